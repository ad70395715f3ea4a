"""Text report of a run: headline, pass^k, terminations, policy violations and failure analysis."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

from tabulate import tabulate

from apigen_gym.core.domain import DataError
from apigen_gym.evaluation.metrics import FailureBreakdown, RunMetrics, compute_metrics, failure_cause
from apigen_gym.evaluation.runner import RESULTS_FILE, EpisodeResult, read_results

TableFormat = Literal["simple", "github"]
CLI_FORMATS: dict[str, TableFormat] = {"terminal": "simple", "markdown": "github"}
TOP = 10


# ------------------------------------------------------------------------------------- formatting


def fmt_rate(value: float, digits: int = 3) -> str:
    """A rate in [0, 1] with fixed decimals."""
    return f"{value:.{digits}f}"


def fmt_percent(value: float) -> str:
    """0.0261 → ``2.6%``."""
    return f"{100 * value:.1f}%"


def fmt_tokens(value: int | None) -> str:
    """Token counts with thousands separators, ``n/a`` when unknown."""
    return "n/a" if value is None else f"{value:,}"


def fmt_cost(value: float | None) -> str:
    """Dollars: cents for large sums, more digits for per-episode costs, ``n/a`` when unknown."""
    if value is None:
        return "n/a"
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def fmt_interval(mean: float, low: float, high: float) -> str:
    """``0.604 [0.521, 0.687]``."""
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _names(values: list[str]) -> str:
    return ", ".join(values) or "n/a"


def _section(title: str, body: str, fmt: TableFormat) -> str:
    """A titled block: a markdown heading, or an underlined title on a terminal."""
    if fmt == "github":
        return f"### {title}\n\n{body}"
    return f"{title}\n{'=' * len(title)}\n{body}"


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str], fmt: TableFormat) -> str:
    return tabulate(rows, headers=list(headers), tablefmt=fmt, disable_numparse=True)


def _more(total: int, shown: int) -> str:
    return f"\n… and {total - shown} more" if total > shown else ""


# -------------------------------------------------------------------------------------- sections


def headline_table(metrics: RunMetrics, fmt: TableFormat = "simple") -> str:
    """One row: who ran, how much, pass^1..k, mean reward with its interval, errors, tokens, cost."""
    pass_headers = [f"pass^{k}" for k in metrics.pass_k]
    headers = ["env", "agent", "user", "episodes", "tasks", "trials", *pass_headers]
    headers += [
        f"mean reward [{round(100 * metrics.confidence)}% CI]",
        "do-nothing",
        "infra errors",
        "tokens",
    ]
    headers += ["cost"]
    tokens = fmt_tokens(metrics.total_tokens)
    if metrics.total_tokens:
        tokens += f" ({fmt_tokens(metrics.prompt_tokens)} in / {fmt_tokens(metrics.completion_tokens)} out)"
    cost = fmt_cost(metrics.cost)
    if metrics.cost_per_episode is not None:
        cost += f" ({fmt_cost(metrics.cost_per_episode)}/episode)"
    trials = str(metrics.trials)
    if metrics.max_trials != metrics.trials:
        trials = f"{metrics.trials}–{metrics.max_trials}"
    row = [
        _names(metrics.env_ids),
        _names(metrics.agents),
        _names(metrics.users),
        str(metrics.episodes),
        str(metrics.tasks),
        trials,
        *(fmt_rate(v) for v in metrics.pass_k.values()),
        fmt_interval(metrics.mean_reward, metrics.ci_low, metrics.ci_high),
        "n/a" if metrics.do_nothing is None else fmt_rate(metrics.do_nothing),
        f"{metrics.infra_errors} ({fmt_percent(metrics.infra_error_rate)})",
        tokens,
        cost,
    ]
    return _table([row], headers, fmt)


def pass_k_table(metrics: RunMetrics, fmt: TableFormat = "simple") -> str:
    """pass^k for every k with its bootstrap interval and the tasks it averages, and on the tasks that
    need action (a change or an output) when the records say which those are."""
    ci = f"{round(100 * metrics.confidence)}% CI"
    rows = [
        (
            f"pass^{k}",
            fmt_rate(v),
            "[{:.3f}, {:.3f}]".format(*metrics.pass_k_ci.get(k, (v, v))),
            metrics.pass_k_tasks.get(k, metrics.tasks),
            fmt_rate(metrics.pass_k_action[k]) if k in metrics.pass_k_action else "n/a",
        )
        for k, v in metrics.pass_k.items()
    ]
    action = "n/a" if metrics.action_tasks is None else str(metrics.action_tasks)
    return _table(rows, ["k", "value", ci, "tasks", f"on the {action} tasks needing action"], fmt)


def episode_table(metrics: RunMetrics, fmt: TableFormat = "simple") -> str:
    """Conversation length, token use, cost and kinds of infrastructure errors."""
    rows = [
        ("turns (assistant messages)", f"mean {metrics.mean_turns:.1f}, median {metrics.median_turns:g}"),
        ("steps", f"mean {metrics.mean_steps:.1f}, median {metrics.median_steps:g}"),
        ("prompt tokens", fmt_tokens(metrics.prompt_tokens)),
        ("completion tokens", fmt_tokens(metrics.completion_tokens)),
        ("cost", fmt_cost(metrics.cost)),
        ("cost per episode", fmt_cost(metrics.cost_per_episode)),
        ("successful episodes", f"{metrics.successes} of {metrics.episodes}"),
    ]
    kinds = ", ".join(f"{kind} {n}" for kind, n in metrics.infra_error_kinds.items())
    rows.append(("infra errors", f"{metrics.infra_errors} ({kinds})" if kinds else "0"))
    return _table(rows, ["metric", "value"], fmt)


def termination_table(metrics: RunMetrics, fmt: TableFormat = "simple") -> str:
    """How episodes ended, with their share."""
    n = max(metrics.episodes, 1)
    rows = [(name, count, fmt_percent(count / n)) for name, count in metrics.terminations.items()]
    return _table(rows, ["termination", "episodes", "share"], fmt)


def violation_table(metrics: RunMetrics, fmt: TableFormat = "simple") -> str:
    """Per policy rule: episodes with at least one violation, their rate, and all violations."""
    if not metrics.violation_rates:
        return "no policy violations"
    rows = [
        (rule, metrics.violation_episodes[rule], fmt_percent(rate), metrics.violation_counts[rule])
        for rule, rate in metrics.violation_rates.items()
    ]
    return _table(rows, ["rule", "episodes", "rate", "violations"], fmt)


def cause_table(failures: FailureBreakdown, fmt: TableFormat = "simple") -> str:
    """Failed episodes by cause."""
    rows = [
        ("state mismatch only", failures.state_mismatch),
        ("missing output only", failures.missing_output),
        ("state mismatch and missing output", failures.both),
        ("infrastructure error", failures.infra_error),
        ("other (state and outputs fine)", failures.other),
        ("total failed episodes", failures.failed_episodes),
    ]
    return _table(rows, ["cause", "episodes"], fmt)


def missing_output_table(failures: FailureBreakdown, fmt: TableFormat = "simple", top: int = TOP) -> str:
    """The required outputs most often missing."""
    rows = [(m.task_id, m.output, m.episodes) for m in failures.missing_outputs[:top]]
    return _table(rows, ["task", "missing output", "episodes"], fmt) + _more(
        len(failures.missing_outputs), top
    )


def differing_record_table(failures: FailureBreakdown, fmt: TableFormat = "simple", top: int = TOP) -> str:
    """The records most often left in a state different from the gold one."""
    rows = [(d.table, d.key, d.episodes) for d in failures.differing_records[:top]]
    table = _table(rows, ["table", "record", "episodes"], fmt)
    return table + _more(len(failures.differing_records), top)


def explain(result: EpisodeResult, width: int = 80) -> str:
    """Why one episode failed, in a line: its error, differing records, missing outputs."""
    if result.error:
        text = result.error
    else:
        info = result.reward_info
        parts = [f"{table}: {', '.join(map(str, keys))}" for table, keys in info.get("differing", {}).items()]
        parts += [f"missing {o.get('output')!r}" for o in info.get("outputs", []) if not o.get("found")]
        text = "; ".join(parts) or f"reward {result.reward:g} ({result.termination or 'no termination'})"
    return text if len(text) <= width else text[: width - 1] + "…"


def _first_failures(results: Sequence[EpisodeResult]) -> dict[str, EpisodeResult]:
    """Each task's first failed episode (lowest trial)."""
    first: dict[str, EpisodeResult] = {}
    for result in sorted(results, key=lambda r: r.trial):
        if failure_cause(result) is not None:
            first.setdefault(result.task_id, result)
    return first


def task_failure_table(
    failures: FailureBreakdown,
    results: Sequence[EpisodeResult] = (),
    fmt: TableFormat = "simple",
    top: int = TOP,
) -> str:
    """The tasks failing most often, with their causes and what went wrong in the first failure."""
    examples = _first_failures(results)
    rows = []
    for t in failures.tasks[:top]:
        causes = {
            "state": t.state_mismatch,
            "output": t.missing_output,
            "both": t.both,
            "infra": t.infra_error,
            "other": t.other,
        }
        why = ", ".join(f"{name} {n}" for name, n in causes.items() if n)
        example = explain(examples[t.task_id]) if t.task_id in examples else ""
        rows.append((t.task_id, f"{t.failures}/{t.trials}", why, example))
    headers = ["task", "failed/trials", "causes", "first failure"]
    return _table(rows, headers, fmt) + _more(len(failures.tasks), top)


# ---------------------------------------------------------------------------------------- report


def format_report(
    metrics: RunMetrics, results: Sequence[EpisodeResult] = (), fmt: TableFormat = "simple"
) -> str:
    """The whole report as text tables (``simple`` for a terminal, ``github`` for markdown)."""
    if fmt not in ("simple", "github"):
        raise ValueError(f"unknown report format {fmt!r} (use 'simple' or 'github')")
    if not metrics.episodes:
        return _section("Run", "no episodes", fmt) + "\n"
    failures = metrics.failures
    sections = [
        ("Run", headline_table(metrics, fmt)),
        ("pass^k", pass_k_table(metrics, fmt)),
        ("Episodes", episode_table(metrics, fmt)),
        ("Terminations", termination_table(metrics, fmt)),
        ("Policy violations (episodes with at least one)", violation_table(metrics, fmt)),
    ]
    if failures.failed_episodes:
        sections.append(("Failures by cause", cause_table(failures, fmt)))
        if failures.missing_outputs:
            sections.append(("Most often missing outputs", missing_output_table(failures, fmt)))
        if failures.differing_records:
            sections.append(("Most often differing records", differing_record_table(failures, fmt)))
        sections.append(("Failing tasks", task_failure_table(failures, results, fmt)))
    if metrics.notes:
        sections.append(("Notes", "\n".join(f"- {note}" for note in metrics.notes)))
    return "\n\n".join(_section(title, body, fmt) for title, body in sections) + "\n"


def report_main(out_dir: str | os.PathLike[str], fmt: str = "terminal") -> str:
    """Read ``out_dir/results.jsonl`` and return its report (``terminal`` or ``markdown``)."""
    if fmt not in CLI_FORMATS:
        raise DataError(f"unknown report format {fmt!r} (use {' or '.join(CLI_FORMATS)})")
    results = read_results(out_dir)
    if not results:
        raise DataError(f"no results in {os.path.join(out_dir, RESULTS_FILE)}")
    return format_report(compute_metrics(results), results, CLI_FORMATS[fmt])
