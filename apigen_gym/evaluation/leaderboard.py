"""The leaderboard: one JSON file per submission, built into a markdown table and a static page.

``leaderboard/submissions/*.json`` hold :class:`Submission` records. :func:`build` turns them into
``leaderboard/README.md`` (a markdown table per domain and task set, best pass^1 first) and a
self-contained ``leaderboard/index.html`` (sortable table, pass^k curves as inline SVG; no network).
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from tabulate import tabulate

from apigen_gym.core.domain import DataError
from apigen_gym.evaluation.metrics import compute_metrics
from apigen_gym.evaluation.runner import RESULTS_FILE, read_results
from apigen_gym.util.jsonio import atomic_write_text, read_json, write_json
from apigen_gym.util.version import VERSION as __version__

MEASURED = "measured here"
REPORTED = "reported elsewhere (τ-bench original tasks)"
Source = Literal["measured here", "reported elsewhere (τ-bench original tasks)"]
TaskSet = Literal["apigen-gym", "tau-bench"]
TASK_SET_LABELS: dict[str, str] = {
    "apigen-gym": "apigen-gym tasks",
    "tau-bench": "τ-bench original tasks",
}
SUBMISSIONS = "submissions"
README = "README.md"
INDEX = "index.html"
HARNESS = f"apigen-gym {__version__}"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ENV_ID = re.compile(r"^(?:[\w.-]+:)?apigen/([a-z][a-z0-9_]*)-v\d+$")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


class LeaderboardError(DataError):
    """A submission file or run folder that cannot be used; the message says which and why."""


# ------------------------------------------------------------------------------------------ schema


class Submission(BaseModel):
    """One leaderboard entry: who ran what, and the scores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="the agent's model, or 'none' for offline agents")
    agent: str = Field(min_length=1, description="agent strategy, e.g. tool-calling, oracle, random")
    user_model: str = Field(min_length=1, description="the user simulator (model, or 'scripted')")
    domain: str = Field(description="domain name, e.g. retail")
    task_set: TaskSet = "apigen-gym"
    split: str = Field(min_length=1)
    trials: int | None = Field(None, ge=1, description="trials per task; None when the source does not say")
    pass_k: dict[int, float] = Field(description="k → pass^k; must include k = 1")
    mean_reward: float | None = Field(None, ge=0.0, le=1.0)
    ci_low: float | None = Field(None, ge=0.0, le=1.0)
    ci_high: float | None = Field(None, ge=0.0, le=1.0)
    episodes: int | None = Field(None, ge=1)
    infra_errors: int | None = Field(None, ge=0)
    cost: float | None = Field(None, ge=0.0, description="total USD")
    date: dt.date = Field(description="when it was measured here, or recorded from the source")
    harness_version: str | None = None
    source: Source
    citation: str | None = Field(None, description="where a reported number comes from")
    notes: str = ""

    @field_validator("domain")
    @classmethod
    def _domain_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"domain must be a lower-case name like 'retail', got {value!r}")
        return value

    @field_validator("pass_k")
    @classmethod
    def _pass_k_curve(cls, value: dict[int, float]) -> dict[int, float]:
        if 1 not in value:
            raise ValueError("pass_k must include k = 1")
        ordered = dict(sorted(value.items()))
        for k, p in ordered.items():
            if k < 1:
                raise ValueError(f"pass_k keys are k ≥ 1, got {k}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"pass^{k} must be in [0, 1], got {p}")
        values = list(ordered.values())
        if any(b > a + 1e-9 for a, b in zip(values, values[1:])):
            raise ValueError("pass^k cannot grow with k")
        return ordered

    @model_validator(mode="after")
    def _consistent(self) -> Submission:
        if self.trials is not None and max(self.pass_k) > self.trials:
            raise ValueError(f"pass^{max(self.pass_k)} needs at least {max(self.pass_k)} trials")
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError("give both ci_low and ci_high, or neither")
        if self.ci_low is not None and self.ci_high is not None:
            if self.mean_reward is None:
                raise ValueError("an interval needs mean_reward")
            if not self.ci_low - 1e-9 <= self.mean_reward <= self.ci_high + 1e-9:
                raise ValueError("need ci_low ≤ mean_reward ≤ ci_high")
        if self.infra_errors is not None and self.episodes is not None and self.infra_errors > self.episodes:
            raise ValueError("infra_errors cannot exceed episodes")
        if self.source == MEASURED:
            missing = [
                f
                for f in ("trials", "mean_reward", "ci_low", "episodes", "infra_errors")
                if getattr(self, f) is None
            ]
            if missing or not self.harness_version:
                raise ValueError(f"a measured submission needs {', '.join(missing or ['harness_version'])}")
        else:
            if not self.citation:
                raise ValueError("a reported submission needs a citation")
            if self.task_set != "tau-bench":
                raise ValueError(
                    "reported submissions are on τ-bench's original tasks (task_set 'tau-bench')"
                )
        return self

    def slug(self) -> str:
        """A file name stem: domain, task set, split, model, agent, user."""
        parts = [self.domain, self.task_set, self.split, self.model, self.agent, self.user_model]
        return re.sub(r"[^a-z0-9.]+", "-", "-".join(parts).lower()).strip("-.")[:120]


# ------------------------------------------------------------------------------------ submissions


def domain_of_env(env_id: str) -> str:
    """``apigen/retail-v0`` → ``retail``."""
    match = _ENV_ID.match(env_id)
    if not match:
        raise LeaderboardError(f"cannot tell the domain of env {env_id!r}")
    return match.group(1)


def submission_from_run(
    out_dir: str | os.PathLike[str],
    *,
    model: str,
    agent: str | None = None,
    user_model: str | None = None,
    domain: str | None = None,
    task_set: TaskSet = "apigen-gym",
    split: str = "test",
    date: dt.date | None = None,
    notes: str = "",
    max_k: int | None = None,
) -> Submission:
    """A "measured here" submission from ``out_dir/results.jsonl``; names default to the run's."""
    results = read_results(out_dir)
    if not results:
        raise LeaderboardError(f"no results in {Path(out_dir) / RESULTS_FILE}")
    metrics = compute_metrics(results, max_k=max_k)
    for field, values in (("env", metrics.env_ids), ("agent", metrics.agents), ("user", metrics.users)):
        if len(values) > 1:
            raise LeaderboardError(
                f"the run mixes several {field}s ({', '.join(values)}); submit one at a time"
            )
    try:
        return Submission(
            model=model,
            agent=agent or metrics.agents[0],
            user_model=user_model or metrics.users[0],
            domain=domain or domain_of_env(metrics.env_ids[0]),
            task_set=task_set,
            split=split,
            trials=metrics.trials,
            pass_k={k: round(v, 6) for k, v in metrics.pass_k.items()},
            mean_reward=round(metrics.mean_reward, 6),
            ci_low=round(metrics.ci_low, 6),
            ci_high=round(metrics.ci_high, 6),
            episodes=metrics.episodes,
            infra_errors=metrics.infra_errors,
            cost=None if metrics.cost is None else round(metrics.cost, 6),
            date=date or dt.date.today(),
            harness_version=HARNESS,
            source=MEASURED,
            notes=notes,
        )
    except ValidationError as exc:
        raise LeaderboardError(f"the run in {out_dir} does not make a valid submission: {exc}") from exc


def write_submission(submission: Submission, leaderboard_dir: str | os.PathLike[str]) -> Path:
    """Save ``submission`` as ``submissions/<slug>.json`` (replacing an entry with the same slug)."""
    path = Path(leaderboard_dir) / SUBMISSIONS / f"{submission.slug()}.json"
    write_json(path, submission.model_dump(mode="json"))
    return path


def load_submissions(leaderboard_dir: str | os.PathLike[str]) -> list[Submission]:
    """Every ``submissions/*.json``, validated; a bad file is an error naming the file."""
    submissions = []
    for path in sorted((Path(leaderboard_dir) / SUBMISSIONS).glob("*.json")):
        try:
            submissions.append(Submission.model_validate(read_json(path)))
        except (ValueError, OSError) as exc:
            raise LeaderboardError(f"{path.name}: not a valid submission: {exc}") from exc
    return submissions


# ---------------------------------------------------------------------------------- table helpers


Group = tuple[str, str, str]


def group_of(s: Submission) -> Group:
    """(domain, task set, split): rows are compared only within one group."""
    return s.domain, s.task_set, s.split


def group_title(group: Group) -> str:
    """``τ-bench original tasks, test split``."""
    return f"{TASK_SET_LABELS[group[1]]}, {group[2]} split"


def ranked(submissions: Iterable[Submission]) -> list[Submission]:
    """Best pass^1 first, then mean reward, then model name."""
    return sorted(submissions, key=lambda s: (-s.pass_k[1], -(s.mean_reward or 0.0), s.model, s.agent))


def grouped(submissions: Iterable[Submission]) -> dict[Group, list[Submission]]:
    """Groups in domain order (apigen-gym tasks before τ-bench's), each ranked."""
    groups: dict[Group, list[Submission]] = {}
    for s in sorted(submissions, key=group_of):
        groups.setdefault(group_of(s), []).append(s)
    return {g: ranked(rows) for g, rows in groups.items()}


def max_k(submissions: Iterable[Submission]) -> int:
    return max((max(s.pass_k) for s in submissions), default=1)


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _cost(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def _reward(s: Submission) -> str:
    if s.mean_reward is None:
        return "—"
    if s.ci_low is None or s.ci_high is None:
        return _num(s.mean_reward)
    return f"{s.mean_reward:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def citations(submissions: Iterable[Submission]) -> dict[str, int]:
    """Each distinct citation → its footnote number, in order of appearance."""
    numbers: dict[str, int] = {}
    for s in submissions:
        if s.citation and s.citation not in numbers:
            numbers[s.citation] = len(numbers) + 1
    return numbers


def _source(s: Submission, notes: dict[str, int]) -> str:
    """``measured here``, or ``reported elsewhere [n]`` pointing at the n-th source."""
    if s.source == MEASURED:
        return s.source
    return f"reported elsewhere [{notes[s.citation]}]" if s.citation else "reported elsewhere"


# ------------------------------------------------------------------------------------ README.md


def _markdown_table(rows: Sequence[Submission], notes: dict[str, int]) -> str:
    k_max = max_k(rows)
    headers = ["#", "model", "agent", "user", *(f"pass^{k}" for k in range(1, k_max + 1))]
    headers += ["mean reward [95% CI]", "trials", "episodes", "infra errors", "cost", "date", "source"]
    body = [
        [
            str(rank),
            s.model,
            s.agent,
            s.user_model,
            *(_num(s.pass_k.get(k)) for k in range(1, k_max + 1)),
            _reward(s),
            _int(s.trials),
            _int(s.episodes),
            _int(s.infra_errors),
            _cost(s.cost),
            s.date.isoformat(),
            _source(s, notes),
        ]
        for rank, s in enumerate(rows, 1)
    ]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _markdown_notes(rows: Sequence[Submission]) -> str:
    """Each distinct note once, after the ranks (#) of the rows it belongs to."""
    ranks: dict[str, list[str]] = {}
    for rank, s in enumerate(rows, 1):
        if s.notes:
            ranks.setdefault(s.notes, []).append(f"#{rank}")
    return "\n".join(f"- {', '.join(r)}: {note}" for note, r in ranks.items()) + "\n"


README_INTRO = """\
# Leaderboard

Generated by `apigen-gym leaderboard build` from `submissions/*.json`: edit those, not this file.
The same entries, sortable and with pass^k curves, are in `index.html` (open it in a browser; it
needs no network).

- **pass^k**: the chance that k independent trials of a task all succeed, estimated without bias
  from n trials as C(c, k) / C(n, k) and averaged over tasks (τ-bench, Yao et al. 2024). An episode
  that ended on an infrastructure error counts as a failure.
- **mean reward [95% CI]**: mean over tasks, with a bootstrap interval that resamples tasks.
- **measured here**: run with this harness (`apigen-gym eval`). **reported elsewhere**: copied from
  the cited source, not re-run here; a different harness and user simulator, so compare with care.
- Rows are compared only within one table (same domain, task set and split), best pass^1 first.
- **date**: when the run was made, or when a reported number was recorded here.
"""


def render_readme(submissions: Sequence[Submission]) -> str:
    """The markdown page: one table per domain and task set."""
    notes = citations(ranked(submissions))
    parts = [README_INTRO]
    if not submissions:
        parts.append("No submissions yet.\n")
    domain = None
    for group, rows in grouped(submissions).items():
        if group[0] != domain:
            domain = group[0]
            parts.append(f"## {domain}\n")
        parts.append(f"### {group_title(group)}\n\n{_markdown_table(rows, notes)}\n")
        if any(s.notes for s in rows):
            parts.append(_markdown_notes(rows))
    if notes:
        parts.append("## Sources\n\n" + "\n".join(f"{n}. {c}" for c, n in notes.items()) + "\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------- index.html


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


class _Plot:
    """Geometry of one pass^k chart: plot box, k range, and value → pixel maps."""

    width, left, right, top, bottom = 640, 64, 620, 20, 260

    def __init__(self, k_max: int, series: int):
        self.k_max = k_max
        self.height = self.bottom + 56 + 20 * series

    def x(self, k: int) -> float:
        if self.k_max == 1:
            return (self.left + self.right) / 2
        return self.left + (k - 1) * (self.right - self.left) / (self.k_max - 1)

    def y(self, value: float) -> float:
        return self.bottom - value * (self.bottom - self.top)


def _svg_axes(plot: _Plot) -> list[str]:
    """Frame, horizontal grid with pass^k ticks, k ticks, and both axis labels."""
    left, right, top, bottom = plot.left, plot.right, plot.top, plot.bottom
    out = [
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="#fafafa" stroke="#999"/>'
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = plot.y(tick)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick:.2f}</text>')
    for k in range(1, plot.k_max + 1):
        x = plot.x(k)
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="#999"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 17}" text-anchor="middle" font-size="11">{k}</text>')
    middle = (top + bottom) / 2
    out.append(
        f'<text x="{(left + right) / 2:.0f}" y="{bottom + 34}" text-anchor="middle" font-size="12">'
        "k (trials of a task that must all succeed)</text>"
    )
    out.append(
        f'<text x="16" y="{middle:.0f}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 16 {middle:.0f})">pass^k</text>'
    )
    return out


def _svg_series(plot: _Plot, index: int, s: Submission) -> list[str]:
    """One submission: its polyline, a point per k with a tooltip, and its legend entry."""
    colour = COLOURS[index % len(COLOURS)]
    style = f'stroke="{colour}" stroke-width="2"' + (
        ' stroke-dasharray="6 4"' if s.source != MEASURED else ""
    )
    label = f"{s.model} · {s.agent}"
    points = " ".join(f"{plot.x(k):.1f},{plot.y(v):.1f}" for k, v in s.pass_k.items())
    out = [f'<polyline class="series" points="{points}" fill="none" {style}/>']
    out += [
        f'<circle cx="{plot.x(k):.1f}" cy="{plot.y(v):.1f}" r="3" fill="{colour}">'
        f"<title>{_e(label)}: pass^{k} = {v:.3f}</title></circle>"
        for k, v in s.pass_k.items()
    ]
    ly = plot.bottom + 56 + 20 * index
    out.append(f'<line x1="{plot.left}" y1="{ly - 4}" x2="{plot.left + 24}" y2="{ly - 4}" {style}/>')
    suffix = "" if s.source == MEASURED else " (reported elsewhere)"
    out.append(f'<text x="{plot.left + 32}" y="{ly}" font-size="12">{_e(label + suffix)}</text>')
    return out


def pass_k_svg(group: Group, rows: Sequence[Submission]) -> str:
    """Inline SVG: pass^k against k, one polyline per submission, labelled axes and a legend."""
    plot = _Plot(max_k(rows), len(rows))
    title = f"pass^k, {group[0]}, {group_title(group)}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{plot.width}" height="{plot.height}" '
        f'viewBox="0 0 {plot.width} {plot.height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        *_svg_axes(plot),
    ]
    for index, s in enumerate(rows):
        out += _svg_series(plot, index, s)
    out.append("</svg>")
    return "\n".join(out)


def _cell(text: str, sort_value: float | str | None = None) -> str:
    key = "" if sort_value is None else f' data-v="{_e(sort_value)}"'
    return f"<td{key}>{_e(text)}</td>"


def _html_row(s: Submission, k_max: int, notes: dict[str, int]) -> str:
    cells = [
        _cell(s.domain),
        _cell(TASK_SET_LABELS[s.task_set]),
        _cell(s.split),
        _cell(s.model),
        _cell(s.agent),
        _cell(s.user_model),
        *(_cell(_num(s.pass_k.get(k)), s.pass_k.get(k, -1.0)) for k in range(1, k_max + 1)),
        _cell(_reward(s), -1.0 if s.mean_reward is None else s.mean_reward),
        _cell(_int(s.trials), s.trials or -1),
        _cell(_int(s.episodes), s.episodes or -1),
        _cell(_int(s.infra_errors), -1 if s.infra_errors is None else s.infra_errors),
        _cell(_cost(s.cost), -1.0 if s.cost is None else s.cost),
        _cell(s.date.isoformat()),
        _cell(_source(s, notes)),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


SORT_SCRIPT = """\
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var asc = th.dataset.dir !== "asc";
    th.dataset.dir = asc ? "asc" : "desc";
    var key = function (row) {
      var c = row.cells[col];
      return c.dataset.v !== undefined ? c.dataset.v : c.textContent;
    };
    var rows = Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      var d = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? d : -d;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

STYLE = """\
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th:hover { background: #e0e0e0; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1.5rem 0; }
.note { color: #555; font-size: 14px; max-width: 900px; }
"""


def render_index(submissions: Sequence[Submission]) -> str:
    """The static page: sortable table of every submission, then pass^k curves per group."""
    notes = citations(ranked(submissions))
    groups = grouped(submissions)
    k_max = max_k(submissions)
    headers = [
        "domain",
        "tasks",
        "split",
        "model",
        "agent",
        "user",
        *(f"pass^{k}" for k in range(1, k_max + 1)),
    ]
    headers += ["mean reward [95% CI]", "trials", "episodes", "infra errors", "cost", "date", "source"]
    rows = [_html_row(s, k_max, notes) for members in groups.values() for s in members]
    charts = [
        f"<figure>\n<figcaption>{_e(g[0])}: {_e(group_title(g))}</figcaption>\n"
        f"{pass_k_svg(g, members)}\n</figure>"
        for g, members in groups.items()
    ]
    sources = "".join(f"<li>{_e(c)}</li>" for c in notes)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>apigen-gym leaderboard</title>",
        f"<style>\n{STYLE}</style>",
        "</head>",
        "<body>",
        "<h1>apigen-gym leaderboard</h1>",
        '<p class="note">pass^k: the chance that k trials of a task all succeed (unbiased estimator '
        "C(c, k) / C(n, k), averaged over tasks); infrastructure errors count as failures. "
        "Mean reward with a 95% bootstrap interval over tasks. “Reported elsewhere” rows are copied "
        "from the cited source, not re-run here. Compare rows only within one domain, task set and split. "
        "Click a column header to sort.</p>",
        '<table class="sortable">',
        "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead>",
        "<tbody>",
        *rows,
        "</tbody>",
        "</table>",
        "<h2>pass^k curves</h2>",
        '<p class="note">Solid: measured here. Dashed: reported elsewhere.</p>',
        *charts,
    ]
    if sources:
        parts += ["<h2>Sources</h2>", f"<ol>{sources}</ol>"]
    parts += [f"<script>\n{SORT_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------- build


def build(leaderboard_dir: str | os.PathLike[str] = "leaderboard") -> list[Submission]:
    """Write ``README.md`` and ``index.html`` from the submissions, atomically; return them."""
    root = Path(leaderboard_dir)
    submissions = load_submissions(root)
    atomic_write_text(root / README, render_readme(submissions))
    atomic_write_text(root / INDEX, render_index(submissions))
    return submissions


def build_main(leaderboard_dir: str | os.PathLike[str] = "leaderboard") -> str:
    """``apigen-gym leaderboard build``: build and say what was written."""
    root = Path(leaderboard_dir)
    if not (root / SUBMISSIONS).is_dir():
        raise LeaderboardError(f"no {SUBMISSIONS}/ folder in {leaderboard_dir}")
    count = len(build(root))
    return f"{count} submissions → {root / README}, {root / INDEX}"


def submit_main(
    out_dir: str | os.PathLike[str], leaderboard_dir: str | os.PathLike[str], **fields: Any
) -> str:
    """``apigen-gym leaderboard submit``: add the run in ``out_dir`` as a submission, then rebuild."""
    path = write_submission(submission_from_run(out_dir, **fields), leaderboard_dir)
    build(leaderboard_dir)
    return f"wrote {path}"
