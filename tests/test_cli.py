"""The command line: envs, eval (with resume), play, and one-line errors for bad arguments."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from apigen_gym.cli import main
from apigen_gym.evaluation.runner import read_results


def test_envs_lists_retail(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "apigen/retail-v0" in out
    assert "16" in out  # tools


def test_eval_oracle_on_tau_bench_tasks_and_resume(
    anchors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--env", "apigen/retail-v0", "--data-dir", str(anchors / "retail"), "--split", "dev"]
    args += ["--agent", "oracle", "--out", str(tmp_path)]
    assert main(args) == 0
    first = read_results(tmp_path)
    assert len(first) == 20
    assert all(r.reward == 1.0 for r in first)
    row = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])
    assert {"task_id", "trial", "reward", "reward_info", "messages"} <= set(row)
    out = capsys.readouterr()
    assert "mean reward" in out.out
    assert "oracle (offline)" in out.err

    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:7]) + "\n" + lines[7][:50])  # killed mid-write
    assert main(args) == 0
    again = read_results(tmp_path)
    assert sorted(r.task_id for r in again) == sorted(r.task_id for r in first)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 20


def test_eval_random_agent_scores_low(anchors: Path, tmp_path: Path) -> None:
    args = ["eval", "--env", "apigen/retail-v0", "--data-dir", str(anchors / "retail"), "--split", "dev"]
    assert main([*args, "--agent", "random", "--out", str(tmp_path), "--tasks", "0,1,2,3,4"]) == 0
    results = read_results(tmp_path)
    assert len(results) == 5
    assert sum(r.reward for r in results) < 5


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["eval", "--env", "apigen/nowhere-v0", "--out", "x"], "unknown env"),
        (["eval", "--env", "apigen/retail-v0", "--out", "x", "--trials", "0"], "--trials"),
        (["eval", "--env", "apigen/retail-v0", "--out", "x", "--trials", "many"], "invalid int"),
        (["eval", "--env", "apigen/retail-v0", "--out", "x", "--agent", "genius"], "invalid choice"),
        (["eval", "--env", "apigen/retail-v0", "--out", "x", "--data-dir", "/no/such/dir"], "no such folder"),
        (["eval", "--env", "apigen/retail-v0", "--out", "x", "--split", "nosplit"], "no split"),
        (["eval", "--env", "apigen/retail-v0", "--out", "x", "--tasks", "no-such-task"], "no task"),
        (["play", "--env", "apigen/retail-v0", "--task", "no-such-task"], "no task"),
        (["eval", "--out", "x"], "--env"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("apigen-gym: error:") and fragment in err


def test_console_script_reports_errors_without_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "apigen_gym.cli", "eval", "--env", "nope", "--out", "x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("apigen-gym: error: unknown env 'nope' (known: apigen/retail-v0, ")


def test_play_reads_tool_calls_and_messages(
    anchors: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = [
        "/tools",
        "Could you tell me your email address, or your first name, last name and zip code?",
        json.dumps(
            {
                "name": "find_user_id_by_name_zip",
                "arguments": {"first_name": "Yusuf", "last_name": "Rossi", "zip": "19122"},
            }
        ),
        "{broken json",
        "/quit",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(typed) + "\n"))
    assert (
        main(["play", "--env", "apigen/retail-v0", "--data-dir", str(anchors / "retail"), "--task", "0"]) == 0
    )
    out = capsys.readouterr().out
    assert "exchange_delivered_order_items" in out  # /tools
    assert "Yusuf Rossi, zip code 19122" in out  # the scripted user answered
    assert "yusuf_rossi_9620" in out  # the tool ran
    assert "Error: malformed tool call" in out
    assert '"reward": 0.0' in out  # the gold exchange was never made
