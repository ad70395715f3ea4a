"""The main job, as a user runs it: `apigen-gym generate` offline, then `apigen-gym export`.

Every exported ShareGPT dialogue is replayed in the env (its agent turns, against the scripted user
of the task) and must reach reward 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apigen_gym.cli import main
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.task import Task


def replay_sharegpt(row: dict, task: Task) -> float:
    """Play the dialogue's gpt and function_call turns as the agent; the env's reward at the end."""
    env = ApigenEnv(row["provenance"]["domain"], tasks=[task])
    env.reset(options={"task_id": task.id})
    reward = 0.0
    for turn in row["conversations"][1:]:
        if turn["from"] not in ("gpt", "function_call"):
            continue
        _, step_reward, terminated, truncated, _ = env.step(turn["value"])
        reward = float(step_reward)
        if terminated or truncated:
            break
    return reward


@pytest.mark.parametrize("domain", ["retail", "airline", "travel"])
def test_generate_offline_then_export_sharegpt_replays_to_reward_1(
    domain: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, out = tmp_path / "run", tmp_path / "data.jsonl"
    assert main(["generate", "--domain", domain, "-n", "12", "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "offline: template proposer, rules only, scripted user, oracle agent" in printed
    assert main(["export", str(run), "--format", "sharegpt", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) >= 12
    tasks = {
        t["id"]: Task.model_validate(t) for t in map(json.loads, (run / "phase1" / "accepted.jsonl").open())
    }
    for row in rows:
        assert {"conversations", "tools", "system", "provenance"} <= set(row)
        assert isinstance(row["tools"], str) and json.loads(row["tools"])
        assert {t["from"] for t in row["conversations"]} <= {"human", "gpt", "function_call", "observation"}
        task = tasks[row["provenance"]["task_id"]]
        assert row["provenance"]["instruction"] == task.instruction
        assert replay_sharegpt(row, task) == 1.0, task.id

    assert main(["generate", "--domain", domain, "-n", "12", "--out", str(run)]) == 0  # resume: nothing new
    again = [json.loads(line) for line in (run / "phase2" / "dialogues.jsonl").open()]
    assert len(again) == len(rows)


def test_generate_bad_arguments_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--domain", "nowhere", "-n", "3", "--out", str(tmp_path)]) == 2
    assert main(["generate", "--domain", "retail", "-n", "0", "--out", str(tmp_path)]) == 2
    assert main(["export", str(tmp_path / "missing"), "--format", "openai"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and all(line.startswith("apigen-gym: error:") for line in err.splitlines())


@pytest.mark.parametrize(
    ("flag", "summary"),
    [
        ("--model", "phase 1 accepted nothing: all {n} proposal rounds ended in an LLM error"),
        ("--agent-model", "phase 2 verified nothing: all {n} episodes ended in an infrastructure error"),
    ],
)
def test_a_generation_whose_every_call_failed_exits_1(
    flag: str, summary: str, refused_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "--domain", "retail", "-n", "1", "--out", str(tmp_path), flag, "m"]
    assert main([*argv, "--base-url", refused_url, "--max-retries", "0"]) == 1
    captured = capsys.readouterr()
    assert "retail run" in captured.out  # the stats are still printed
    stats = json.loads((tmp_path / "stats.json").read_text())
    n = stats["phase1"]["proposals"] if flag == "--model" else stats["phase2"]["episodes"]
    assert n > 0 and captured.err == (
        f"apigen-gym: error: {summary.format(n=n)} (see {tmp_path / 'stats.json'})\n"
    )
