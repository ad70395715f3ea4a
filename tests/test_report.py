"""The run report: expected sections and rows, in terminal and markdown form, from a results folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_metrics import INFRA, episode

from apigen_gym.core.domain import DataError
from apigen_gym.evaluation.metrics import compute_metrics
from apigen_gym.evaluation.report import format_report, report_main
from apigen_gym.evaluation.runner import EpisodeResult, ResultsWriter


@pytest.fixture
def results() -> list[EpisodeResult]:
    return [
        episode("t1", 0, 1.0, violations=("retail.confirm_before_write",), cost=0.01),
        episode("t1", 1, 0.0, differing={"orders": ["#W123"]}, missing=("472.5",), cost=0.02),
        episode("t2", 0, 0.0, missing=("472.5",), termination="transfer"),
        episode("t2", 1, 0.0, error=INFRA, termination="error"),
    ]


@pytest.mark.parametrize("fmt", ["simple", "github"])
def test_report_has_every_section_and_row(results: list[EpisodeResult], fmt: str) -> None:
    text = format_report(compute_metrics(results), results, fmt=fmt)  # type: ignore[arg-type]
    for expected in [
        "apigen/retail-v0",
        "pass^1",
        "pass^2",
        "mean reward [95% CI]",
        "0.250 [",
        "infra errors",
        "1 (25.0%)",
        "RateLimitError 1",
        "$0.03",
        "Terminations",
        "transfer",
        "retail.confirm_before_write",
        "25.0%",
        "Failures by cause",
        "state mismatch and missing output",
        "472.5",
        "#W123",
        "t2",
        "1/2",
        "2/2",
    ]:
        assert expected in text, expected
    if fmt == "github":
        assert "### Run" in text and "|---" in text.replace(":", "-")
    else:
        assert "Run\n===" in text and "|" not in text.split("Notes")[0].replace("pass^", "")


def test_report_of_clean_run_has_no_failure_sections() -> None:
    results = [episode("a"), episode("b")]
    text = format_report(compute_metrics(results), results)
    assert "no policy violations" in text
    assert "Failures by cause" not in text
    assert "1.000 [1.000, 1.000]" in text


def test_report_rejects_unknown_format(results: list[EpisodeResult]) -> None:
    with pytest.raises(ValueError):
        format_report(compute_metrics(results), results, fmt="html")  # type: ignore[arg-type]


def test_report_main_reads_a_results_folder(results: list[EpisodeResult], tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    for result in results:
        writer.write(result)
    terminal = report_main(str(tmp_path), "terminal")
    markdown = report_main(str(tmp_path), "markdown")
    assert "pass^2" in terminal and "pass^2" in markdown
    assert "### Failing tasks" in markdown
    with pytest.raises(DataError):
        report_main(str(tmp_path), "pdf")
    with pytest.raises(DataError, match="no results"):
        report_main(str(tmp_path / "missing"), "terminal")
