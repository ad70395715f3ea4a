"""Leaderboard: the submission schema, submissions from a run, and the built README and page."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from test_metrics import episode

from apigen_gym.evaluation.leaderboard import (
    MEASURED,
    REPORTED,
    LeaderboardError,
    Submission,
    build,
    build_main,
    load_submissions,
    submission_from_run,
    write_submission,
)
from apigen_gym.evaluation.runner import ResultsWriter

REPO_LEADERBOARD = Path(__file__).resolve().parents[1] / "leaderboard"
VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "col", "area", "base", "embed"}


def measured(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "model": "gpt-x",
        "agent": "tool-calling",
        "user_model": "scripted",
        "domain": "retail",
        "split": "test",
        "trials": 2,
        "pass_k": {1: 0.5, 2: 0.25},
        "mean_reward": 0.5,
        "ci_low": 0.4,
        "ci_high": 0.6,
        "episodes": 230,
        "infra_errors": 0,
        "cost": 1.5,
        "date": "2026-01-02",
        "harness_version": "apigen-gym 0.1.0",
        "source": MEASURED,
    }
    fields.update(changes)
    return fields


def reported(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "model": "some-model",
        "agent": "tool-calling",
        "user_model": "not stated",
        "domain": "retail",
        "task_set": "tau-bench",
        "split": "test",
        "pass_k": {1: 0.7, 2: 0.6},
        "date": "2026-01-02",
        "source": REPORTED,
        "citation": "a paper, table 1",
    }
    fields.update(changes)
    return fields


class PageChecker(HTMLParser):
    """Checks tags nest and close properly; counts table rows, SVGs, polylines and external refs."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.body_rows = 0
        self.in_tbody = False
        self.tags: dict[str, int] = {}
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            remote = (value or "").startswith(("http://", "https://")) and name != "xmlns"
            if name in ("src", "href") or remote:
                self.external.append(f"{tag} {name}={value}")
        if tag == "tbody":
            self.in_tbody = True
        if tag == "tr" and self.in_tbody:
            self.body_rows += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.in_tbody = False
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()


def check_page(text: str) -> PageChecker:
    checker = PageChecker()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    return checker


# -------------------------------------------------------------------------------------------- schema


def test_valid_submissions_round_trip() -> None:
    for fields in (measured(), reported(), reported(pass_k={1: 0.6})):
        submission = Submission.model_validate(fields)
        again = Submission.model_validate(json.loads(json.dumps(submission.model_dump(mode="json"))))
        assert again == submission
    assert Submission.model_validate(measured()).date == dt.date(2026, 1, 2)


@pytest.mark.parametrize(
    "fields",
    [
        measured(pass_k={2: 0.25}),  # no pass^1
        measured(pass_k={1: 1.5}),
        measured(pass_k={1: 0.2, 2: 0.3}),  # grows with k
        measured(pass_k={0: 0.5, 1: 0.5}),
        measured(pass_k={1: 0.5, 2: 0.4, 3: 0.3}),  # k above trials
        measured(trials=None),
        measured(harness_version=None),
        measured(ci_low=0.55),  # above the mean
        measured(ci_high=None),
        measured(infra_errors=300),
        measured(mean_reward=1.2),
        measured(cost=-1.0),
        measured(domain="Retail Shop"),
        measured(model=""),
        measured(source="measured somewhere"),
        measured(date="yesterday"),
        measured(colour="blue"),  # unknown field
        reported(citation=None),
        reported(task_set="apigen-gym"),
    ],
)
def test_schema_rejects_bad_input(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Submission.model_validate(fields)


# ----------------------------------------------------------------------------------- from a run


def test_submission_from_run_has_the_run_numbers_and_no_paths(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    writer = ResultsWriter(run_dir)
    for result in [episode("a", 0), episode("a", 1, 0.0), episode("b", 0), episode("b", 1)]:
        writer.write(result)
    submission = submission_from_run(run_dir, model="none", date=dt.date(2026, 1, 2))
    assert (submission.agent, submission.user_model, submission.domain) == ("oracle", "scripted", "retail")
    assert submission.pass_k == {1: 0.75, 2: 0.5}
    assert (submission.trials, submission.episodes, submission.infra_errors) == (2, 4, 0)
    assert submission.source == MEASURED and submission.harness_version
    path = write_submission(submission, tmp_path / "lb")
    assert path.parent.name == "submissions"
    assert str(tmp_path) not in path.read_text(encoding="utf-8")
    with pytest.raises(LeaderboardError):
        submission_from_run(tmp_path / "empty", model="none")


# ------------------------------------------------------------------------------------------ build


@pytest.fixture
def board(tmp_path: Path) -> Path:
    root = tmp_path / "lb"
    entries = [
        measured(model="gpt-x", pass_k={1: 0.5, 2: 0.25}),
        measured(model="model <b>&", pass_k={1: 0.8, 2: 0.7}, mean_reward=0.8, ci_low=0.7, ci_high=0.9),
        measured(model="small", domain="airline", pass_k={1: 0.2}, trials=1, mean_reward=0.2, ci_low=0.1),
        reported(),
    ]
    for fields in entries:
        write_submission(Submission.model_validate(fields), root)
    return root


def test_build_writes_one_row_per_submission(board: Path) -> None:
    assert "4 submissions" in build_main(board)
    readme = (board / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if re.match(r"^\| \d+ ", line)]
    assert len(rows) == 4
    assert "## airline" in readme and "## retail" in readme
    retail = readme.split("## retail")[1]
    assert retail.index("model <b>&") < retail.index("gpt-x")  # best pass^1 first
    assert "reported elsewhere [1]" in readme and "1. a paper, table 1" in readme

    page = (board / "index.html").read_text(encoding="utf-8")
    checker = check_page(page)
    assert checker.body_rows == 4
    assert checker.tags["svg"] == 3  # retail apigen-gym, retail tau-bench, airline
    assert checker.tags["polyline"] == 4
    assert checker.external == []
    assert "<script>" in page and "model &lt;b&gt;&amp;" in page
    assert "pass^k" in page and "k (trials" in page  # labelled axes


def test_build_is_deterministic_and_atomic(board: Path) -> None:
    build(board)
    first = {p.name: p.read_bytes() for p in board.iterdir() if p.is_file()}
    build(board)
    assert first == {p.name: p.read_bytes() for p in board.iterdir() if p.is_file()}
    assert not [p for p in board.iterdir() if p.name.endswith(".tmp")]


def test_bad_submission_file_is_named(board: Path) -> None:
    (board / "submissions" / "broken.json").write_text('{"model": "x"}', encoding="utf-8")
    with pytest.raises(LeaderboardError, match="broken.json"):
        build(board)
    with pytest.raises(LeaderboardError):
        build_main(board / "nowhere")


def test_empty_board_builds() -> None:
    assert load_submissions(Path("/nonexistent-leaderboard")) == []


def test_shipped_leaderboard_is_valid_and_up_to_date(tmp_path: Path) -> None:
    if not (REPO_LEADERBOARD / "submissions").is_dir():
        pytest.skip("no leaderboard/submissions in this checkout")
    copy = tmp_path / "lb"
    shutil.copytree(REPO_LEADERBOARD / "submissions", copy / "submissions")
    submissions = build(copy)
    assert submissions
    for name in ("README.md", "index.html"):
        shipped = (REPO_LEADERBOARD / name).read_text(encoding="utf-8")
        assert shipped == (copy / name).read_text(encoding="utf-8"), f"{name} is stale: rebuild it"
    local = [str(REPO_LEADERBOARD.parent.parent), tempfile.gettempdir(), str(Path.home())]
    for path in (REPO_LEADERBOARD / "submissions").glob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert not any(place in text for place in local), f"{path.name} names a folder of this machine"
    assert all(s.citation for s in submissions if s.source == REPORTED)
