"""Metrics: pass^k by hand, infrastructure errors as failures, bootstrap interval, rates, breakdowns."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from apigen_gym.evaluation.metrics import (
    bootstrap_ci,
    compute_metrics,
    error_kind,
    failure_cause,
    is_success,
    pass_hat_k,
    pass_hat_k_curve,
)
from apigen_gym.evaluation.runner import EpisodeResult

INFRA = "infrastructure: RateLimitError after 5 retries"


def episode(
    task_id: str,
    trial: int = 0,
    reward: float = 1.0,
    *,
    error: str | None = None,
    violations: tuple[str, ...] = (),
    differing: dict[str, list[str]] | None = None,
    missing: tuple[str, ...] = (),
    termination: str = "user_stop",
    turns: int = 2,
    **extra: Any,
) -> EpisodeResult:
    """A hand-made episode record: reward, failure details, violations and an n-turn dialogue."""
    outputs = [{"output": o, "found": False} for o in missing] + [{"output": "ok", "found": True}]
    info = {
        "reward": reward,
        "state_match": not differing,
        "differing": differing or {},
        "outputs": outputs,
        "violations": [{"rule": r, "step": i, "message": r} for i, r in enumerate(violations)],
        "output_mode": "compat",
        "violation_penalty": 0.0,
    }
    messages = [{"role": "system", "content": "policy"}]
    for _ in range(turns):
        messages += [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    return EpisodeResult(
        task_id=task_id,
        trial=trial,
        reward=reward,
        reward_info=info,
        messages=messages,
        termination=termination,
        steps=turns,
        env_id="apigen/retail-v0",
        agent="oracle",
        user="scripted",
        seconds=0.01,
        error=error,
        **extra,
    )


def trials(task_id: str, successes: int, n: int) -> list[EpisodeResult]:
    """``n`` trials of one task, the first ``successes`` of them successful."""
    return [episode(task_id, t, 1.0 if t < successes else 0.0) for t in range(n)]


# ------------------------------------------------------------------------------------------ pass^k


def test_pass_hat_k_by_hand() -> None:
    assert pass_hat_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)
    assert pass_hat_k(4, 2, 3) == 0.0
    assert pass_hat_k(8, 4, 4) == pytest.approx(1 / 70)
    assert pass_hat_k(5, 0, 1) == 0.0
    for n in range(1, 9):
        assert all(pass_hat_k(n, n, k) == 1.0 for k in range(1, n + 1))


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(3, 1, 4), (3, 1, 0), (3, 4, 1), (3, -1, 1), (0, 0, 1), (3, 1, 1.5), (3, True, 1), ("3", 1, 1)],
)
def test_pass_hat_k_rejects_bad_input(n: Any, c: Any, k: Any) -> None:
    with pytest.raises(ValueError):
        pass_hat_k(n, c, k)


def test_pass_hat_k_curve_three_tasks_by_hand() -> None:
    results = trials("a", 4, 4) + trials("b", 2, 4) + trials("c", 1, 4)
    curve = pass_hat_k_curve(results)
    assert list(curve) == [1, 2, 3, 4]
    assert curve[1] == pytest.approx((1 + 0.5 + 0.25) / 3)
    assert curve[2] == pytest.approx((1 + 1 / 6 + 0) / 3)
    assert curve[3] == pytest.approx(1 / 3)
    assert curve[4] == pytest.approx(1 / 3)


def test_success_threshold_and_infra_errors_are_failures() -> None:
    assert is_success(episode("a", reward=1 - 1e-7))
    assert not is_success(episode("a", reward=0.999))
    assert not is_success(episode("a", reward=1.0, error=INFRA))
    results = [episode("a", 0), episode("a", 1, error=INFRA, reward=1.0), episode("b", 0, 0.0, error=INFRA)]
    metrics = compute_metrics(results)
    assert metrics.pass_k[1] == pytest.approx((0.5 + 0.0) / 2)
    assert metrics.mean_reward == pytest.approx(0.25)
    assert metrics.infra_errors == 2
    assert metrics.infra_error_rate == pytest.approx(2 / 3)
    assert metrics.infra_error_kinds == {"RateLimitError": 2}
    assert metrics.failures.infra_error == 2
    assert failure_cause(results[1]) == "infra_error"


def test_error_kind() -> None:
    assert error_kind(INFRA) == "RateLimitError"
    assert error_kind("infrastructure: APITimeoutError: read timed out") == "APITimeoutError"
    assert error_kind("") == "unknown"


def test_tasks_with_fewer_trials_are_excluded_from_larger_k_with_a_note() -> None:
    results = trials("a", 3, 3) + trials("b", 1, 2)
    assert list(pass_hat_k_curve(results)) == [1, 2]
    curve = pass_hat_k_curve(results, max_k=3)
    assert curve[3] == 1.0  # task a only
    metrics = compute_metrics(results, max_k=3)
    assert metrics.pass_k_tasks == {1: 2, 2: 2, 3: 1}
    assert (metrics.trials, metrics.max_trials) == (2, 3)
    assert any("pass^3: 1 of 2 tasks excluded" in note for note in metrics.notes)
    assert any("between 2 and 3 trials" in note for note in metrics.notes)


# --------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_contains_mean_and_is_seeded() -> None:
    values = np.random.default_rng(7).random(200)
    low, high = bootstrap_ci(values, seed=3)
    assert low < values.mean() < high
    assert bootstrap_ci(values, seed=3) == (low, high)
    assert bootstrap_ci(values, seed=4) != (low, high)
    wide = bootstrap_ci(values, confidence=0.99, seed=3)
    assert wide[0] <= low and high <= wide[1]


def test_bootstrap_degenerate_when_all_equal() -> None:
    assert bootstrap_ci([0.1] * 50) == (0.1, 0.1)
    metrics = compute_metrics([episode(t) for t in "abc"])
    assert metrics.ci_low == metrics.mean_reward == metrics.ci_high == 1.0


def test_bootstrap_resamples_tasks_not_episodes() -> None:
    # one task with many trials and one with few: per-task means weigh each task once
    results = trials("a", 10, 10) + trials("b", 0, 2)
    metrics = compute_metrics(results)
    assert metrics.mean_reward == pytest.approx(0.5)
    assert metrics.ci_low <= 0.5 <= metrics.ci_high


def test_bootstrap_is_fast_and_rejects_bad_input() -> None:
    started = time.perf_counter()
    bootstrap_ci(np.random.default_rng(0).random(5000), resamples=2000)
    assert time.perf_counter() - started < 2.0
    for bad in (np.array([]), np.ones((2, 2))):
        with pytest.raises(ValueError):
            bootstrap_ci(bad)
    with pytest.raises(ValueError):
        bootstrap_ci([0.0, 1.0], confidence=1.0)


# ---------------------------------------------------------------------------------- other sections


def test_violation_rates_count_episodes_not_violations() -> None:
    results = [
        episode("a", 0, violations=("confirm", "confirm", "auth")),
        episode("a", 1, violations=("confirm",)),
        episode("b", 0),
        episode("b", 1),
    ]
    metrics = compute_metrics(results)
    assert metrics.violation_rates == {"confirm": 0.5, "auth": 0.25}
    assert metrics.violation_episodes == {"confirm": 2, "auth": 1}
    assert metrics.violation_counts == {"confirm": 3, "auth": 1}


def test_failure_breakdown_causes_outputs_and_records() -> None:
    results = [
        episode("a", 0, 0.0, differing={"orders": ["#W1"]}),
        episode("a", 1, 0.0, differing={"orders": ["#W1", "#W2"]}, missing=("42",)),
        episode("b", 0, 0.0, missing=("42",)),
        episode("b", 1, 0.0, missing=("42", "7")),
        episode("c", 0, 1.0),
        episode("c", 1, 0.5),
    ]
    failures = compute_metrics(results).failures
    assert (failures.state_mismatch, failures.missing_output, failures.both, failures.other) == (1, 2, 1, 1)
    assert failures.failed_episodes == 5
    assert [(m.task_id, m.output, m.episodes) for m in failures.missing_outputs[:2]] == [
        ("b", "42", 2),
        ("a", "42", 1),
    ]
    assert [(d.table, d.key, d.episodes) for d in failures.differing_records] == [
        ("orders", "#W1", 2),
        ("orders", "#W2", 1),
    ]
    assert failures.differing_tables == {"orders": 2}
    assert [(t.task_id, t.failures, t.trials) for t in failures.tasks] == [
        ("a", 2, 2),
        ("b", 2, 2),
        ("c", 1, 2),
    ]


def test_terminations_turns_steps_tokens_and_cost() -> None:
    results = [
        episode("a", 0, turns=2, usage={"prompt_tokens": 100, "completion_tokens": 10}, cost=0.5),
        episode("a", 1, turns=4, termination="transfer", usage={"prompt_tokens": 50, "completion_tokens": 5}),
        episode("b", 0, turns=9, termination="max_steps", cost=0.25),
    ]
    metrics = compute_metrics(results)
    assert metrics.terminations == {"user_stop": 1, "transfer": 1, "max_steps": 1}
    assert (metrics.mean_turns, metrics.median_turns) == (5.0, 4.0)
    assert (metrics.mean_steps, metrics.median_steps) == (5.0, 4.0)
    assert (metrics.prompt_tokens, metrics.completion_tokens, metrics.total_tokens) == (150, 15, 165)
    assert metrics.cost == pytest.approx(0.75)
    assert metrics.cost_per_episode == pytest.approx(0.25)
    assert (metrics.env_ids, metrics.agents, metrics.users) == (
        ["apigen/retail-v0"],
        ["oracle"],
        ["scripted"],
    )


def test_old_rows_without_usage_or_cost_still_work() -> None:
    row = json.loads(episode("a").model_dump_json())
    for field in ("usage", "cost"):
        row.pop(field, None)
    old = EpisodeResult.model_validate_json(json.dumps(row))
    metrics = compute_metrics([old])
    assert metrics.pass_k == {1: 1.0}
    assert metrics.cost in (None, 0.0)


def test_duplicates_and_empty_runs() -> None:
    metrics = compute_metrics([episode("a", 0, 0.0), episode("a", 0, 1.0)])
    assert (metrics.episodes, metrics.pass_k) == (1, {1: 1.0})
    assert any("duplicate" in note for note in metrics.notes)
    empty = compute_metrics([])
    assert (empty.episodes, empty.pass_k, empty.mean_reward) == (0, {}, 0.0)
