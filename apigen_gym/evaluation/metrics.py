"""Run metrics from episode records: pass^k, mean reward with a bootstrap interval, cost, failures.

Every function here is pure. Fields the harness added later (``usage``, ``cost``) are read with
defaults, so records written before they existed still work. An episode with an ``error`` (an
infrastructure failure after the last retry) scores 0 and counts as a failure, never as missing.
"""

from __future__ import annotations

import math
import operator
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from apigen_gym.evaluation.runner import EpisodeResult, needs_action

SUCCESS_THRESHOLD = 1.0 - 1e-6
DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
_BOOTSTRAP_CELLS = 2_000_000  # resampled indices held in memory at once


# ---------------------------------------------------------------------------------------------- pass^k


def _count(value: Any, name: str) -> int:
    """``value`` as an int (bools and non-integers are rejected with a ValueError)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased pass^k of one task with ``c`` successes in ``n`` trials: C(c, k) / C(n, k)."""
    n, c, k = _count(n, "n"), _count(c, "c"), _count(k, "k")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be between 0 and n={n}, got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and n={n}, got {k}")
    return math.comb(c, k) / math.comb(n, k)


def is_infra_error(result: EpisodeResult) -> bool:
    """True when the episode ended on an infrastructure error (its reward does not count)."""
    return bool(result.error)


def episode_reward(result: EpisodeResult) -> float:
    """The reward that counts: 0 for an episode with an infrastructure error."""
    return 0.0 if is_infra_error(result) else float(result.reward)


def is_success(result: EpisodeResult) -> bool:
    """A trial succeeds when its reward is 1 (within 1e-6) and it has no infrastructure error."""
    return episode_reward(result) >= SUCCESS_THRESHOLD


def dedupe(results: Iterable[EpisodeResult]) -> list[EpisodeResult]:
    """One record per (task, trial), the last one seen winning; order of first appearance kept."""
    latest: dict[tuple[str, int], EpisodeResult] = {}
    for result in results:
        latest[(result.task_id, result.trial)] = result
    return list(latest.values())


def by_task(results: Iterable[EpisodeResult]) -> dict[str, list[EpisodeResult]]:
    """Records grouped by task id, tasks in order of first appearance."""
    groups: dict[str, list[EpisodeResult]] = defaultdict(list)
    for result in results:
        groups[result.task_id].append(result)
    return dict(groups)


def _trial_counts(results: Iterable[EpisodeResult]) -> dict[str, tuple[int, int]]:
    """task id → (trials, successes)."""
    return {
        task: (len(rows), sum(is_success(r) for r in rows)) for task, rows in by_task(dedupe(results)).items()
    }


def _curve(
    counts: Mapping[str, tuple[int, int]], max_k: int | None
) -> tuple[dict[int, float], dict[int, list[float]], list[str]]:
    """pass^k for k = 1..K, the per-task values behind each k, and notes on excluded tasks."""
    if not counts:
        return {}, {}, []
    trials = [n for n, _ in counts.values()]
    top = min(trials) if max_k is None else min(_count(max_k, "max_k"), max(trials))
    if top < 1:
        raise ValueError(f"max_k must be at least 1, got {max_k}")
    curve: dict[int, float] = {}
    values: dict[int, list[float]] = {}
    notes: list[str] = []
    for k in range(1, top + 1):
        values[k] = [pass_hat_k(n, c, k) for n, c in counts.values() if n >= k]
        curve[k] = float(np.mean(values[k]))
        excluded = len(counts) - len(values[k])
        if excluded:
            notes.append(f"pass^{k}: {excluded} of {len(counts)} tasks excluded (fewer than {k} trials)")
    return curve, values, notes


def pass_hat_k_curve(results: Iterable[EpisodeResult], max_k: int | None = None) -> dict[int, float]:
    """pass^k averaged over tasks for k = 1..min trials (or up to ``max_k``, excluding shorter tasks)."""
    return _curve(_trial_counts(results), max_k)[0]


# ---------------------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per task), seeded."""
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("bootstrap_ci needs a non-empty 1-D sequence of values")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if _count(resamples, "resamples") < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if np.ptp(data) == 0.0:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // data.size)
    means = np.concatenate(
        [
            data[rng.integers(0, data.size, size=(min(chunk, resamples - start), data.size))].mean(axis=1)
            for start in range(0, resamples, chunk)
        ]
    )
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


# ------------------------------------------------------------------------------------------- models


class OutputMiss(BaseModel):
    """A required output the agent never said, and in how many failed episodes."""

    task_id: str
    output: str
    episodes: int


class RecordDiff(BaseModel):
    """A record whose final state differed from the gold one, and in how many failed episodes."""

    table: str
    key: str
    episodes: int


class TaskFailures(BaseModel):
    """One task's failed trials, by cause."""

    task_id: str
    trials: int
    failures: int
    state_mismatch: int = 0
    missing_output: int = 0
    both: int = 0
    infra_error: int = 0
    other: int = 0


class FailureBreakdown(BaseModel):
    """Why episodes failed: cause counts, the outputs and records most often wrong, per-task tallies."""

    failed_episodes: int = 0
    state_mismatch: int = Field(0, description="state differs, every output found")
    missing_output: int = Field(0, description="state matches, an output missing")
    both: int = Field(0, description="state differs and an output missing")
    infra_error: int = 0
    other: int = Field(0, description="state and outputs fine, reward still below 1 (e.g. a penalty)")
    missing_outputs: list[OutputMiss] = Field(default_factory=list)
    differing_tables: dict[str, int] = Field(default_factory=dict)
    differing_records: list[RecordDiff] = Field(default_factory=list)
    tasks: list[TaskFailures] = Field(default_factory=list)


class RunMetrics(BaseModel):
    """Everything a report or a leaderboard entry needs about one run."""

    env_ids: list[str] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    episodes: int = 0
    tasks: int = 0
    trials: int = Field(0, description="trials of the task with fewest (the largest k every task has)")
    max_trials: int = 0
    successes: int = 0
    pass_k: dict[int, float] = Field(default_factory=dict)
    pass_k_ci: dict[int, tuple[float, float]] = Field(default_factory=dict)
    pass_k_tasks: dict[int, int] = Field(default_factory=dict)
    do_nothing: float | None = Field(
        None,
        description="share of tasks with no gold change and no required output: what an agent that only "
        "says goodbye scores (None when the records do not say)",
    )
    action_tasks: int | None = Field(None, description="tasks that need a change or an output")
    pass_k_action: dict[int, float] = Field(
        default_factory=dict, description="pass^k over the tasks that need a change or an output"
    )
    mean_reward: float = Field(0.0, description="mean over tasks of each task's mean reward")
    ci_low: float = 0.0
    ci_high: float = 0.0
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    infra_errors: int = 0
    infra_error_rate: float = 0.0
    infra_error_kinds: dict[str, int] = Field(default_factory=dict)
    terminations: dict[str, int] = Field(default_factory=dict)
    violation_rates: dict[str, float] = Field(default_factory=dict)
    violation_episodes: dict[str, int] = Field(default_factory=dict)
    violation_counts: dict[str, int] = Field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    cost_per_episode: float | None = None
    mean_turns: float = 0.0
    median_turns: float = 0.0
    mean_steps: float = 0.0
    median_steps: float = 0.0
    failures: FailureBreakdown = Field(default_factory=FailureBreakdown)
    notes: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------------------------ field readers


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name``, None when absent (records and usage may be dicts or models)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def usage_of(result: EpisodeResult) -> tuple[int, int, int] | None:
    """(prompt, completion, total) tokens of an episode, or None when the record has no usage."""
    usage = getattr(result, "usage", None)
    if usage is None:
        return None
    prompt = int(_field(usage, "prompt_tokens") or 0)
    completion = int(_field(usage, "completion_tokens") or 0)
    total = _field(usage, "total_tokens")
    return prompt, completion, int(total) if total is not None else prompt + completion


def cost_of(result: EpisodeResult) -> float | None:
    """USD cost of an episode, or None when the record has no cost."""
    cost = getattr(result, "cost", None)
    return None if cost is None else float(cost)


def turns_of(result: EpisodeResult) -> int:
    """Assistant messages in the episode."""
    return sum(1 for m in result.messages if m.get("role") == "assistant")


def error_kind(error: str) -> str:
    """``"infrastructure: RateLimitError after 5 retries"`` → ``"RateLimitError"``."""
    text = error.split(":", 1)[1] if error.startswith("infrastructure:") else error
    words = text.split()
    return words[0].rstrip(":,.") if words else "unknown"


def failure_cause(result: EpisodeResult) -> str | None:
    """None for a success, else infra_error, both, state_mismatch, missing_output or other."""
    if is_infra_error(result):
        return "infra_error"
    if is_success(result):
        return None
    info = result.reward_info
    state_bad = info.get("state_match") is False or any(info.get("differing", {}).values())
    output_bad = any(not o.get("found", False) for o in info.get("outputs", []))
    if state_bad and output_bad:
        return "both"
    if state_bad:
        return "state_mismatch"
    return "missing_output" if output_bad else "other"


# ---------------------------------------------------------------------------------------- sections


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _violations(results: Sequence[EpisodeResult]) -> tuple[dict[str, float], dict[str, int], dict[str, int]]:
    """Per rule: share of episodes with ≥ 1 violation, those episodes, and all violations."""
    episodes: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for result in results:
        rules = [str(v.get("rule", "unknown")) for v in result.reward_info.get("violations", [])]
        total.update(rules)
        episodes.update(set(rules))
    n = len(results)
    ordered = [rule for rule, _ in episodes.most_common()]
    return (
        {rule: episodes[rule] / n for rule in ordered},
        {rule: episodes[rule] for rule in ordered},
        {rule: total[rule] for rule in ordered},
    )


def _usage(results: Sequence[EpisodeResult]) -> dict[str, Any]:
    """Token and cost totals; None where no record carries the field."""
    usages = [u for u in map(usage_of, results) if u is not None]
    costs = [c for c in map(cost_of, results) if c is not None]
    fields: dict[str, Any] = {}
    if usages:
        fields["prompt_tokens"] = sum(u[0] for u in usages)
        fields["completion_tokens"] = sum(u[1] for u in usages)
        fields["total_tokens"] = sum(u[2] for u in usages)
    if costs:
        fields["cost"] = math.fsum(costs)
        fields["cost_per_episode"] = fields["cost"] / len(results)
    return fields


def _shape(results: Sequence[EpisodeResult]) -> dict[str, float]:
    turns = [turns_of(r) for r in results]
    steps = [r.steps for r in results]
    return {
        "mean_turns": float(np.mean(turns)),
        "median_turns": float(np.median(turns)),
        "mean_steps": float(np.mean(steps)),
        "median_steps": float(np.median(steps)),
    }


def failure_breakdown(results: Sequence[EpisodeResult]) -> FailureBreakdown:
    """Failure causes, most often missing outputs and differing records, and per-task tallies."""
    causes: Counter[str] = Counter()
    outputs: Counter[tuple[str, str]] = Counter()
    records: Counter[tuple[str, str]] = Counter()
    tables: Counter[str] = Counter()
    tasks: dict[str, TaskFailures] = {}
    for task_id, rows in by_task(results).items():
        tally = TaskFailures(task_id=task_id, trials=len(rows), failures=0)
        for result in rows:
            cause = failure_cause(result)
            if cause is None:
                continue
            causes[cause] += 1
            tally.failures += 1
            setattr(tally, cause, getattr(tally, cause) + 1)
            if cause == "infra_error":
                continue
            info = result.reward_info
            for miss in info.get("outputs", []):
                if not miss.get("found", False):
                    outputs[(task_id, str(miss.get("output", "")))] += 1
            for table, keys in info.get("differing", {}).items():
                tables[table] += 1
                records.update((table, str(key)) for key in keys)
        if tally.failures:
            tasks[task_id] = tally
    return FailureBreakdown(
        failed_episodes=sum(causes.values()),
        state_mismatch=causes["state_mismatch"],
        missing_output=causes["missing_output"],
        both=causes["both"],
        infra_error=causes["infra_error"],
        other=causes["other"],
        missing_outputs=[OutputMiss(task_id=t, output=o, episodes=n) for (t, o), n in outputs.most_common()],
        differing_tables=dict(tables.most_common()),
        differing_records=[RecordDiff(table=t, key=k, episodes=n) for (t, k), n in records.most_common()],
        tasks=sorted(tasks.values(), key=lambda t: (-t.failures / t.trials, -t.failures)),
    )


def _pass_k_section(
    results: Sequence[EpisodeResult], max_k: int | None, resamples: int, confidence: float, seed: int
) -> dict[str, Any]:
    counts = _trial_counts(results)
    curve, values, notes = _curve(counts, max_k)
    trials = [n for n, _ in counts.values()]
    if trials and min(trials) != max(trials):
        notes.insert(0, f"tasks have between {min(trials)} and {max(trials)} trials")
    return {
        "trials": min(trials, default=0),
        "max_trials": max(trials, default=0),
        "pass_k": curve,
        "pass_k_ci": {k: bootstrap_ci(v, resamples, confidence, seed) for k, v in values.items()},
        "pass_k_tasks": {k: len(v) for k, v in values.items()},
        "notes": notes,
    }


def _baseline_section(results: Sequence[EpisodeResult], max_k: int | None) -> dict[str, Any]:
    """The do-nothing score and pass^k on the tasks that need action, from tasks whose records say."""
    needs: dict[str, bool] = {}
    for task, rows in by_task(results).items():
        known = [flag for flag in map(needs_action, rows) if flag is not None]
        if known:
            needs[task] = known[0]
    if not needs:
        return {}
    action = [r for r in results if needs.get(r.task_id)]
    return {
        "do_nothing": sum(not flag for flag in needs.values()) / len(needs),
        "action_tasks": sum(needs.values()),
        "pass_k_action": _curve(_trial_counts(action), max_k)[0] if action else {},
    }


def _reward_section(
    results: Sequence[EpisodeResult], resamples: int, confidence: float, seed: int
) -> dict[str, float]:
    task_means = [float(np.mean([episode_reward(r) for r in rows])) for rows in by_task(results).values()]
    low, high = bootstrap_ci(task_means, resamples, confidence, seed)
    return {"mean_reward": float(np.mean(task_means)), "ci_low": low, "ci_high": high}


def compute_metrics(
    results: Sequence[EpisodeResult],
    *,
    max_k: int | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> RunMetrics:
    """All metrics of a run; the bootstrap resamples tasks, not episodes, and is seeded."""
    unique = dedupe(results)
    if not unique:
        return RunMetrics(resamples=resamples, confidence=confidence, notes=["no episodes"])
    fields: dict[str, Any] = _pass_k_section(unique, max_k, resamples, confidence, seed)
    if len(unique) < len(results):
        fields["notes"].append(f"{len(results) - len(unique)} duplicate (task, trial) records ignored")
    errors = [r.error for r in unique if r.error]
    rates, with_rule, counts = _violations(unique)
    fields.update(
        env_ids=_distinct(r.env_id for r in unique),
        agents=_distinct(r.agent for r in unique),
        users=_distinct(r.user for r in unique),
        episodes=len(unique),
        tasks=len(by_task(unique)),
        successes=sum(map(is_success, unique)),
        infra_errors=len(errors),
        infra_error_rate=len(errors) / len(unique),
        infra_error_kinds=dict(Counter(map(error_kind, errors)).most_common()),
        terminations=dict(Counter(r.termination or "none" for r in unique).most_common()),
        violation_rates=rates,
        violation_episodes=with_rule,
        violation_counts=counts,
        failures=failure_breakdown(unique),
        **_reward_section(unique, resamples, confidence, seed),
        **_baseline_section(unique, max_k),
        **_usage(unique),
        **_shape(unique),
    )
    return RunMetrics(resamples=resamples, confidence=confidence, **fields)
