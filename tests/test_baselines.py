"""Baselines beside every run: the do-nothing score of the tasks, and pass^k on the tasks that need action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_metrics import episode

from apigen_gym.core.env import ApigenEnv
from apigen_gym.evaluation.metrics import compute_metrics
from apigen_gym.evaluation.report import format_report
from apigen_gym.evaluation.runner import EpisodeResult, evaluate, format_summary
from apigen_gym.players.agent import Agent
from apigen_gym.players.oracle import OracleAgent


def marked(
    task_id: str, trial: int, reward: float, gold_changes: int | None, outputs: int = 0
) -> EpisodeResult:
    result = episode(task_id, trial, reward)
    info: dict[str, Any] = dict(result.reward_info, outputs=[{"output": "x", "found": True}] * outputs)
    if gold_changes is not None:
        info["gold_changes"] = gold_changes
    return result.model_copy(update={"reward_info": info})


def test_the_do_nothing_share_and_pass_k_on_tasks_needing_action() -> None:
    results = [
        marked("nothing", 0, 1.0, 0),
        marked("nothing", 1, 1.0, 0),  # no change, no output
        marked("say", 0, 1.0, 0, outputs=1),
        marked("say", 1, 0.0, 0, outputs=1),  # an output only
        marked("write", 0, 1.0, 2),
        marked("write", 1, 1.0, 2),
        marked("fail", 0, 0.0, 1),
        marked("fail", 1, 0.0, 1),
    ]
    metrics = compute_metrics(results)
    assert metrics.do_nothing == 0.25 and metrics.action_tasks == 3
    assert metrics.pass_k == {1: 0.625, 2: 0.5}
    assert metrics.pass_k_action == {1: pytest.approx(0.5), 2: pytest.approx(1 / 3)}
    text = format_report(metrics, results)
    assert "do-nothing" in text and "0.250" in text and "on the 3 tasks needing action" in text
    assert "0.333" in text


def test_records_that_do_not_say_give_no_baseline() -> None:
    metrics = compute_metrics([marked("a", 0, 1.0, None), marked("b", 0, 0.0, None)])
    assert metrics.do_nothing is None and metrics.action_tasks is None and metrics.pass_k_action == {}
    assert "n/a" in format_report(metrics, [])


class Goodbye(Agent):
    """An agent that only says goodbye."""

    name = "goodbye"

    def act(self, observation: str) -> Any:
        return "Thank you, goodbye! ###STOP###"


def test_an_agent_that_only_says_goodbye_scores_the_do_nothing_baseline(tmp_path: Path) -> None:
    env = ApigenEnv("retail")
    results = evaluate(lambda: ApigenEnv(env.domain), Goodbye, tmp_path / "bye", concurrency=8)
    metrics = compute_metrics(results)
    assert metrics.tasks == 115 and metrics.do_nothing == pytest.approx(10 / 115)
    assert metrics.pass_k[1] == pytest.approx(metrics.do_nothing)
    assert metrics.pass_k_action == {1: 0.0} and metrics.action_tasks == 105
    assert "do-nothing baseline  0.087" in format_summary(results)
    oracle = evaluate(
        lambda: ApigenEnv(env.domain),
        lambda: OracleAgent(env.domain.tools),
        tmp_path / "oracle",
        task_ids=[t.id for t in env.tasks[:20]],
    )
    assert compute_metrics(oracle).pass_k_action == {1: 1.0}
