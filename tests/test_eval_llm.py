"""Evaluation with model agents and users, end to end: the real ``openai`` client, the loopback server.

- the ``oracle`` model scores pass^1 = 1 on the whole retail test split; ``chatty`` only passes the
  tasks with nothing to write and nothing to say;
- injected 500s (and 429s, empty answers) are retried away; a server that is down gives labelled
  infrastructure errors that count as failures;
- ``apigen-gym eval`` as a process: SIGKILL then resume gives every (task, trial) exactly once,
  Ctrl-C stops cleanly, ``--cache-dir`` replays with the server stopped; ``apigen-gym report``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apigen_gym import cli
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.reward import GOLD
from apigen_gym.evaluation.metrics import compute_metrics, pass_hat_k_curve
from apigen_gym.evaluation.runner import RESULTS_FILE, EpisodeResult, evaluate, read_results
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.loopback.server import LoopbackServer, ServerConfig
from apigen_gym.players.llm_users import LLMUser
from apigen_gym.players.model_agents import ToolCallingAgent
from apigen_gym.util.jsonio import UnreadableLines

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env() -> ApigenEnv:
    return ApigenEnv("retail", split="test")


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(ServerConfig()) as running:
        yield running


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def model_client(base_url: str, model: str, **kwargs: Any) -> LLMClient:
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("timeout", 20.0)
    return LLMClient(LLMSettings(model=model, base_url=base_url, **kwargs))


def run_eval(
    env: ApigenEnv,
    agent_client: LLMClient,
    out: Path,
    task_ids: list[str] | None = None,
    user: Callable[[], Any] | None = None,
    clients: tuple[LLMClient, ...] = (),
    concurrency: int = 32,
    trials: int = 1,
) -> list[EpisodeResult]:
    def make_env() -> ApigenEnv:
        kwargs = {"user": user()} if user is not None else {}
        return ApigenEnv(env.domain, database=env.database, split="test", **kwargs)

    return evaluate(
        make_env,
        lambda: ToolCallingAgent(agent_client),
        out,
        task_ids,
        trials=trials,
        concurrency=concurrency,
        clients=(agent_client, *clients),
    )


def nothing_to_do(env: ApigenEnv) -> set[str]:
    """Tasks whose gold actions change nothing and which ask for no output."""
    return {
        t.id
        for t in env.tasks
        if not any(GOLD.diff(env.domain.tools, env.database, t).values()) and not t.outputs
    }


# --- scores through the server ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["aiohttp", "openai"])
def test_oracle_model_scores_pass1_of_1_on_the_test_split(
    env: ApigenEnv, server: LoopbackServer, tmp_path: Path, transport: str
) -> None:
    before = server.stats()["completed"]
    started = time.perf_counter()
    results = run_eval(env, model_client(server.base_url, "oracle", transport=transport), tmp_path)
    elapsed = time.perf_counter() - started
    assert len(results) == len(env.tasks) == 115
    assert [r.task_id for r in results] == [t.id for t in env.tasks]
    failed = [(r.task_id, r.error, r.reward_info.get("differing")) for r in results if r.reward != 1.0]
    assert failed == []
    metrics = compute_metrics(results)
    assert metrics.pass_k == {1: 1.0} and metrics.infra_errors == 0 and metrics.successes == 115
    assert metrics.total_tokens and metrics.total_tokens > 0
    assert all(r.usage.total_tokens > 0 and r.agent == "tool-calling" for r in results)
    assert server.stats()["completed"] - before == sum(
        sum(1 for m in r.messages if m["role"] == "assistant") for r in results
    )
    assert len(read_results(tmp_path)) == 115
    assert elapsed < 30


def test_chatty_model_passes_only_tasks_with_nothing_to_do(
    env: ApigenEnv, server: LoopbackServer, tmp_path: Path
) -> None:
    results = run_eval(env, model_client(server.base_url, "chatty"), tmp_path)
    expected = nothing_to_do(env)
    assert expected  # the split has some (refusals, questions with no answer to give)
    assert {r.task_id for r in results if r.reward == 1.0} == expected
    assert all(r.reward == 0.0 for r in results if r.task_id not in expected)
    assert all(r.error is None for r in results)
    assert not any(m.get("tool_calls") for r in results for m in r.messages)
    assert pass_hat_k_curve(results)[1] == pytest.approx(len(expected) / len(env.tasks))


def test_injected_500s_are_retried_and_every_episode_completes(env: ApigenEnv, tmp_path: Path) -> None:
    with LoopbackServer(ServerConfig(rate_500=0.2, seed=1234)) as running:
        results = run_eval(env, model_client(running.base_url, "oracle", max_retries=12), tmp_path)
        stats = running.stats()
    assert len(results) == 115
    assert all(r.error is None and r.reward == 1.0 for r in results)
    assert stats["faults"]["500"] > 100 and stats["errors"] == {"500": stats["faults"]["500"]}
    assert stats["faults"]["500"] == pytest.approx(0.2 * stats["requests"], rel=0.25)
    assert compute_metrics(results).pass_k == {1: 1.0}


def test_mixed_faults_with_an_llm_user_still_reach_reward_1(env: ApigenEnv, tmp_path: Path) -> None:
    config = ServerConfig(rate_500=0.1, rate_429=0.1, rate_empty=0.05, retry_after_ms=2, seed=99)
    tasks = [t.id for t in env.tasks[:30]]
    with LoopbackServer(config) as running:
        agent = model_client(running.base_url, "oracle", max_retries=12)
        user = model_client(running.base_url, "scripted-user", max_retries=12)
        results = run_eval(env, agent, tmp_path, tasks, user=lambda: LLMUser(user), clients=(user,))
        stats = running.stats()
    assert [r.reward for r in results] == [1.0] * 30 and all(r.error is None for r in results)
    assert all(r.user == "llm" for r in results)
    assert stats["faults"]["500"] and stats["faults"]["429"] and stats["faults"]["empty"]
    assert stats["models"]["scripted-user"] > 30 and stats["models"]["oracle"] > 30
    assert sum(r.usage.total_tokens for r in results) == agent.usage.total_tokens + user.usage.total_tokens


def test_server_down_gives_labelled_infrastructure_errors(
    env: ApigenEnv, refused_url: str, tmp_path: Path
) -> None:
    tasks = [t.id for t in env.tasks[:12]]
    results = run_eval(env, model_client(refused_url, "oracle", max_retries=1), tmp_path, tasks)
    assert len(results) == 12
    for result in results:
        assert result.error is not None and result.error.startswith("infrastructure:")
        assert result.error.endswith("after 2 attempts")
        assert result.reward == 0.0 and result.termination == "error"
    metrics = compute_metrics(results)
    assert metrics.pass_k == {1: 0.0} and metrics.successes == 0
    assert metrics.infra_errors == 12 and metrics.infra_error_rate == 1.0
    assert metrics.failures.infra_error == 12 and metrics.failures.failed_episodes == 12
    assert sum(metrics.infra_error_kinds.values()) == 12
    assert len(read_results(tmp_path)) == 12  # errors are written like any episode


def test_llm_user_down_is_an_infrastructure_error_too(
    env: ApigenEnv, server: LoopbackServer, refused_url: str, tmp_path: Path
) -> None:
    """The user's first message fails in reset: still one labelled row per episode."""
    agent = model_client(server.base_url, "oracle")
    user = model_client(refused_url, "scripted-user", max_retries=0)
    tasks = [t.id for t in env.tasks[:3]]
    results = run_eval(env, agent, tmp_path, tasks, user=lambda: LLMUser(user), clients=(user,))
    assert [r.error for r in results] == [results[0].error] * 3
    assert results[0].error is not None and results[0].error.startswith("infrastructure:")
    assert all(r.reward == 0.0 and r.steps == 0 for r in results)
    assert compute_metrics(results).infra_errors == 3


# --- apigen-gym eval as a process ---------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}


def eval_argv(base_url: str, out: Path, tasks: list[str], *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "apigen_gym.cli",
        "eval",
        "--env",
        "apigen/retail-v0",
        "--split",
        "test",
        "--agent-model",
        "oracle",
        "--base-url",
        base_url,
        "--tasks",
        ",".join(tasks),
        "--max-retries",
        "2",
        "--timeout",
        "20",
        "--out",
        str(out),
        *extra,
    ]


def rows_written(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def start_and_signal(
    argv: list[str], results: Path, rows: int, sig: signal.Signals
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; once ``results`` has at least ``rows`` lines, send ``sig``; wait for the end.

    The child starts with SIGINT handled, as a command typed in a terminal does, even when these tests
    run in a process that ignores it (a shell's background job does, and its children inherit that).
    """
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # a handler is not inherited
    try:
        process = subprocess.Popen(
            argv, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    finally:
        if inherited is not None:  # None: set outside Python, and left as it is now
            signal.signal(signal.SIGINT, inherited)
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and rows_written(results) < rows and time.monotonic() < deadline:
            time.sleep(0.005)
        assert process.poll() is None, "the run ended before it could be interrupted"
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def parse_lines(path: Path) -> list[EpisodeResult]:
    """Every line of ``path`` as a record; fails on any torn or damaged line."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [EpisodeResult.model_validate_json(line) for line in text.splitlines()]


def test_sigkill_then_resume_gives_every_task_trial_exactly_once(env: ApigenEnv, tmp_path: Path) -> None:
    tasks = [t.id for t in env.tasks[:16]]
    trials = 2
    out = tmp_path / "run"
    results = out / RESULTS_FILE
    with LoopbackServer(ServerConfig(latency=0.05)) as running:
        argv = eval_argv(running.base_url, out, tasks, "--trials", str(trials), "--concurrency", "8")
        killed = start_and_signal(argv, results, len(tasks) * trials // 2, signal.SIGKILL)
        assert killed.returncode == -signal.SIGKILL
        kept = results.read_bytes()
        kept = kept[: kept.rfind(b"\n") + 1]  # what was whole when the process died
        before = {(r.task_id, r.trial): r for r in read_results(out)}
        assert 0 < len(before) < len(tasks) * trials
        with results.open("ab") as handle:  # and a torn last line, as a kill mid-write leaves
            handle.write(b'{"task_id": "retail-test-0')
        finished = subprocess.run(argv, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert "Traceback" not in finished.stderr
    rows = parse_lines(results)
    pairs = [(r.task_id, r.trial) for r in rows]
    assert len(rows) == len(tasks) * trials
    assert len(set(pairs)) == len(pairs)
    assert set(pairs) == {(t, k) for t in tasks for k in range(trials)}
    assert results.read_bytes().startswith(kept)  # the rows of the first run are untouched
    final = {(r.task_id, r.trial): r for r in rows}
    assert {p: final[p].reward for p in before} == {p: r.reward for p, r in before.items()}
    assert all(r.reward == 1.0 and r.error is None for r in rows)
    assert re.search(r"^episodes\s+32$", finished.stdout, re.MULTILINE), finished.stdout
    assert compute_metrics(rows).pass_k == {1: 1.0, 2: 1.0}


def test_ctrl_c_stops_cleanly(env: ApigenEnv, tmp_path: Path) -> None:
    tasks = [t.id for t in env.tasks[:16]]
    out = tmp_path / "run"
    results = out / RESULTS_FILE
    with LoopbackServer(ServerConfig(latency=0.05)) as running:
        argv = eval_argv(running.base_url, out, tasks, "--trials", "2", "--concurrency", "8")
        stopped = start_and_signal(argv, results, 3, signal.SIGINT)
    assert stopped.returncode in (130, 1), stopped.stderr
    assert "Traceback" not in stopped.stderr and "Traceback" not in stopped.stdout
    assert "interrupted" in stopped.stderr
    rows = parse_lines(results)  # only whole lines
    assert 3 <= len(rows) < 32
    assert len({(r.task_id, r.trial) for r in rows}) == len(rows)
    assert all(r.reward == 1.0 for r in rows)


# --- apigen-gym eval and report in this process -------------------------------------------------------


def main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def eval_args(base_url: str, out: Path, tasks: list[str], *extra: str) -> list[str]:
    return eval_argv(base_url, out, tasks, *extra)[3:]


def test_cache_dir_records_then_replays_with_the_server_stopped(
    env: ApigenEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = [t.id for t in env.tasks[:8]]
    cache = tmp_path / "cache"
    with LoopbackServer() as running:
        base_url = running.base_url
        code, _, err = main(
            capsys, *eval_args(base_url, tmp_path / "record", tasks, "--cache-dir", str(cache))
        )
        assert code == 0, err
        requests = running.stats()["requests"]
    recorded = sorted(read_results(tmp_path / "record"), key=lambda r: r.task_id)
    assert requests == sum(sum(1 for m in r.messages if m["role"] == "assistant") for r in recorded)
    assert len(list(cache.rglob("*.json"))) == requests
    code, out, err = main(
        capsys,
        *eval_args(base_url, tmp_path / "replay", tasks, "--cache-dir", str(cache), "--max-retries", "0"),
    )
    assert code == 0, err
    replayed = sorted(read_results(tmp_path / "replay"), key=lambda r: r.task_id)
    assert [r.error for r in replayed] == [None] * len(tasks)
    assert [(r.task_id, r.reward) for r in replayed] == [(r.task_id, r.reward) for r in recorded]
    assert all(r.reward == 1.0 for r in replayed)
    assert [r.messages for r in replayed] == [r.messages for r in recorded]
    assert [r.usage for r in replayed] == [r.usage for r in recorded]


def test_cli_with_llm_user_and_best_of_n(
    env: ApigenEnv, server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = [t.id for t in env.tasks[:4]]
    extra = (
        "--user",
        "llm",
        "--user-model",
        "scripted-user",
        "--user-best-of",
        "2",
        "--critic-model",
        "critic",
    )
    code, out, err = main(capsys, *eval_args(server.base_url, tmp_path, tasks, *extra))
    assert code == 0, err
    assert "best-of-2" in err and "scripted-user" in err
    rows = read_results(tmp_path)
    assert [r.reward for r in rows] == [1.0] * 4
    assert all(r.user == "llm-best-of-n" and r.usage.total_tokens > 0 for r in rows)


def test_cli_react_agent_with_the_chatty_model(
    env: ApigenEnv, server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = [t.id for t in env.tasks[:16]]
    args = eval_args(server.base_url, tmp_path, tasks, "--agent", "react")
    args[args.index("oracle")] = "chatty"
    code, _, err = main(capsys, *args)
    assert code == 0, err
    rows = read_results(tmp_path)
    assert all(r.agent == "react" for r in rows)
    assert {r.task_id for r in rows if r.reward == 1.0} == nothing_to_do(env) & set(tasks)


def test_cli_transport_openai_scores_the_same(
    env: ApigenEnv, server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = [t.id for t in env.tasks[:6]]
    code, _, err = main(capsys, *eval_args(server.base_url, tmp_path, tasks, "--transport", "openai"))
    assert code == 0, err
    assert [r.reward for r in read_results(tmp_path)] == [1.0] * 6
    code, _, err = main(capsys, *eval_args(server.base_url, tmp_path / "x", tasks, "--transport", "carrier"))
    assert code == 2 and "--transport" in err and "Traceback" not in err


def test_cli_usage_errors(server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = main(
        capsys, *eval_args(server.base_url, tmp_path, ["retail-test-000"], "--agent", "oracle")
    )
    assert code == 2 and "drop --agent-model" in err
    args = eval_args(server.base_url, tmp_path, ["retail-test-000"], "--user", "llm")
    code, _, err = main(capsys, *args)
    assert code == 2 and "no model" in err


def test_report_prints_pass_k_and_infra_errors(
    env: ApigenEnv,
    refused_url: str,
    server: LoopbackServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    down, fine = tmp_path / "down", tmp_path / "fine"
    tasks = [t.id for t in env.tasks[:4]]
    code, _, err = main(capsys, *eval_args(refused_url, down, tasks, "--max-retries", "0"))
    assert code == 1 and err.splitlines()[-1] == (
        "apigen-gym: error: every episode (4) ended in an error (infrastructure): "
        "infrastructure: APIConnectionError (connection refused) after 1 attempt"
    )
    code, out, err = main(capsys, "report", str(down))
    assert code == 0, err
    assert "pass^1" in out and "infra errors" in out
    assert "4 (100.0%)" in out and "0.000" in out
    assert "infrastructure error" in out and "infrastructure:" in out

    code, _, err = main(capsys, *eval_args(server.base_url, fine, tasks, "--trials", "2"))
    assert code == 0, err
    code, out, _ = main(capsys, "report", str(fine), "--format", "markdown")
    assert code == 0
    assert "pass^1" in out and "pass^2" in out and "| infra errors" in out and "0 (0.0%)" in out


def test_retry_errors_reruns_only_the_episodes_that_failed_on_infrastructure(
    env: ApigenEnv,
    refused_url: str,
    server: LoopbackServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tasks = [t.id for t in env.tasks[:3]]
    code, _, err = main(capsys, *eval_args(refused_url, tmp_path, tasks, "--max-retries", "0"))
    assert code == 1, err  # every episode an outage
    assert all(r.error for r in read_results(tmp_path))

    code, _, err = main(capsys, *eval_args(server.base_url, tmp_path, tasks))  # plain resume: nothing to do
    assert code == 1, err
    assert all(r.error for r in read_results(tmp_path))

    path = tmp_path / "results.jsonl"
    rows = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(rows[0] + b"a line someone else wrote\n" + b"".join(rows[1:]))
    code, _, err = main(capsys, *eval_args(server.base_url, tmp_path, tasks, "--retry-errors"))
    assert code == 0, err
    assert "1 unreadable line skipped (line 2)" in err
    with pytest.warns(UnreadableLines):
        results = read_results(tmp_path)
    assert sorted(r.task_id for r in results) == sorted(tasks)  # replaced, not duplicated
    assert all(r.error is None and r.reward == 1.0 for r in results)
    assert path.read_bytes().splitlines()[0] == b"a line someone else wrote"  # kept as it was
