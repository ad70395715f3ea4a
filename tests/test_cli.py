"""The command line: envs, eval (with resume), play, and one-line errors for bad arguments."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apigen_gym.cli import main
from apigen_gym.evaluation.runner import read_results
from apigen_gym.loopback.models import MODEL_HELP, MODEL_NAMES
from apigen_gym.util.jsonio import UnreadableLines


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


# --- misuse through the real entry point: one line on stderr, exit 2, nothing written --------------

EVAL = ["eval", "--env", "apigen/retail-v0", "--tasks", "retail-test-000"]
GENERATE = ["generate", "--domain", "retail", "-n", "1"]
MISUSE: list[tuple[list[str], str]] = [
    ([*EVAL, "--out", "{file}/sub"], "cannot create the folder"),
    ([*GENERATE, "--out", "{file}/sub"], "cannot create the folder"),
    ([*EVAL, "--out", "{file}"], "not a folder"),
    (["serve-llm", "--port", "99999"], "argument --port: must be at most 65535"),
    (["serve-llm", "--port", "-1"], "argument --port: must be at least 0"),
    ([*EVAL, "--agent-model", "m", "--max-retries", "-3", "--out", "{out}"], "argument --max-retries"),
    ([*EVAL, "--agent-model", "m", "--timeout", "0", "--out", "{out}"], "--timeout: must be above 0"),
    ([*EVAL, "--agent-model", "m", "--temperature", "-3", "--out", "{out}"], "argument --temperature"),
    ([*EVAL, "--agent-model", "m", "--timeout", "nan", "--out", "{out}"], "finite"),
    ([*EVAL, "--max-steps", "0", "--out", "{out}"], "argument --max-steps: must be at least 1"),
    ([*EVAL, "--max-steps", "-1", "--out", "{out}"], "argument --max-steps"),
    ([*EVAL, "--max-steps", "x", "--out", "{out}"], "argument --max-steps: invalid int value"),
    ([*EVAL, "--user-best-of", "3", "--out", "{out}"], "--user-best-of needs an LLM user"),
    ([*EVAL, "--critic-model", "m", "--out", "{out}"], "--critic-model"),
    ([*GENERATE, "--user-best-of", "3", "--out", "{out}"], "--user-best-of needs an LLM user"),
    ([*GENERATE, "--threshold", "2", "--out", "{out}"], "argument --threshold: must be at most 1"),
    ([*EVAL, "--agent", "tool-calling", "--out", "{out}"], "no model: pass --agent-model"),
    ([*EVAL, "--user", "llm", "--out", "{out}"], "no model: pass --user-model"),
]


def test_misuse_gives_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    """Each bad invocation, run as a user runs it (``python -m apigen_gym.cli``), all at once."""
    file = tmp_path / "a-file"
    file.write_text("not a folder\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    runs = []
    for number, (argv, fragment) in enumerate(MISUSE):
        out = tmp_path / f"out-{number}"
        args = [a.format(file=file, out=out) for a in argv]
        command = [sys.executable, "-m", "apigen_gym.cli", *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
        runs.append((args, fragment, out, process))
    for args, fragment, out, process in runs:
        _, err_bytes = process.communicate(timeout=120)
        err = err_bytes.decode()
        assert process.returncode == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith("apigen-gym: error: "), (args, err)
        assert fragment in err and "Traceback" not in err, (args, err)
        assert not out.exists(), (args, "wrote to --out")
    assert file.read_text() == "not a folder\n"


# --- a results folder belongs to one run -------------------------------------------------------------


def test_an_eval_folder_refuses_other_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(tmp_path)]
    assert main([*EVAL, *out]) == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["env_id"] == "apigen/retail-v0" and saved["agent"] == "oracle" and saved["split"] == "test"
    before = (tmp_path / "results.jsonl").read_bytes()
    capsys.readouterr()
    others = [
        ([*EVAL, "--agent", "random", *out], "agent: 'oracle' → 'random'"),
        (
            ["eval", "--env", "apigen/airline-v0", "--tasks", "airline-test-000", *out],
            "env_id: 'apigen/retail-v0'",
        ),
        ([*EVAL, "--max-steps", "5", *out], "max_steps: 60 → 5"),
    ]
    for argv, difference in others:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and difference in err and "cannot be resumed" in err, err
    assert (tmp_path / "results.jsonl").read_bytes() == before  # nothing mixed in
    assert main([*EVAL, *out, "--concurrency", "2", "--tasks", "retail-test-000,retail-test-001"]) == 0
    assert len(read_results(tmp_path)) == 2  # how fast and how much may change: it resumes


def test_unreadable_lines_are_counted_located_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*EVAL, "--tasks", "retail-test-000,retail-test-001", "--out", str(tmp_path)]) == 0
    results = tmp_path / "results.jsonl"
    first, second = results.read_bytes().splitlines(keepends=True)
    garbage = [b"garbage %d\n" % i for i in range(88)] + [b"\xff\xfe binary \x00\n"]
    results.write_bytes(first + b"".join(garbage) + second)
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err == (
        f"apigen-gym: warning: {results}: 89 unreadable lines skipped (lines 2–90), "
        "left in the file as they are\n"
    )
    resumed = [*EVAL, "--tasks", "retail-test-000,retail-test-001,retail-test-002", "--out", str(tmp_path)]
    assert main(resumed) == 0
    assert "89 unreadable lines skipped (lines 2–90)" in capsys.readouterr().err
    lines = results.read_bytes().splitlines(keepends=True)
    assert lines[: len(garbage) + 2] == [first, *garbage, second] and len(lines) == len(garbage) + 3


def test_a_binary_results_file_gives_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path.joinpath("results.jsonl").write_bytes(bytes(range(256)) * 40)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("apigen-gym: warning: ") and "unreadable line" in err[0]
    assert err[1] == f"apigen-gym: error: no results in {tmp_path / 'results.jsonl'}"
    assert main([*EVAL, "--out", str(tmp_path)]) == 0
    with pytest.warns(UnreadableLines, match="40 unreadable lines skipped"):
        assert [r.task_id for r in read_results(tmp_path)] == ["retail-test-000"]


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    assert main([*EVAL, "--out", str(tmp_path)]) == 0  # retail-test-000
    results = tmp_path / "results.jsonl"
    results.write_bytes(results.read_bytes().rstrip(b"\n"))  # e.g. edited by hand
    assert main([*EVAL, "--tasks", "retail-test-000,retail-test-001", "--out", str(tmp_path)]) == 0
    assert [r.task_id for r in read_results(tmp_path)] == ["retail-test-000", "retail-test-001"]


def test_serve_llm_help_lists_the_models_and_their_one_domain(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve-llm", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for name in MODEL_NAMES:
        assert f"\n  {name} " in out
    assert "ONE domain, --oracle-domain (default retail)" in out and "oracle:<domain>" in out
    assert set(MODEL_HELP) == set(MODEL_NAMES)
