"""Run agents on a split and keep every episode: one JSON line each, appended and flushed.

Re-running with the same output folder resumes: finished (task, trial) pairs are read back and
skipped, so a killed run loses nothing that was written.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from tabulate import tabulate

from apigen_gym.agents import Agent
from apigen_gym.env import ApigenEnv

RESULTS_FILE = "results.jsonl"


class EpisodeResult(BaseModel):
    """One finished episode, as written to ``results.jsonl``."""

    task_id: str
    trial: int
    reward: float
    reward_info: dict[str, Any]
    messages: list[dict[str, Any]]
    termination: str | None
    steps: int
    env_id: str
    agent: str
    user: str
    seconds: float
    error: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


def run_episode(
    env: ApigenEnv, agent: Agent, task_id: str, trial: int = 0, seed: int | None = None
) -> EpisodeResult:
    """Play one episode of ``task_id`` to its end and return its record."""
    started = time.perf_counter()
    observation, info = env.reset(seed=seed, options={"task_id": task_id})
    agent.reset(info, env.task)
    reward, done, step_info = 0.0, False, info
    while not done:
        observation, step_reward, terminated, truncated, step_info = env.step(agent.act(observation))
        reward, done = float(step_reward), terminated or truncated
    return EpisodeResult(
        task_id=task_id,
        trial=trial,
        reward=reward,
        reward_info=step_info["reward_info"],
        messages=env.messages,
        termination=env.termination,
        steps=step_info["steps"],
        env_id=f"apigen/{env.domain.name}-v0",
        agent=agent.name,
        user=env.user.name,
        seconds=round(time.perf_counter() - started, 6),
    )


def read_results(out_dir: str | os.PathLike[str]) -> list[EpisodeResult]:
    """Every complete record in ``out_dir/results.jsonl``; a torn last line (a killed run) is ignored."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        return []
    results = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                results.append(EpisodeResult.model_validate_json(line))
            except ValueError:
                continue
    return results


class ResultsWriter:
    """Appends one record per line and flushes it to disk before returning."""

    def __init__(self, out_dir: str | os.PathLike[str]):
        self.path = Path(out_dir) / RESULTS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()

    def _repair_torn_tail(self) -> None:
        """Drop a partial last line left by a killed run, so appends start on a fresh line."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            with self.path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def write(self, result: EpisodeResult) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(result.model_dump_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def evaluate(
    env: ApigenEnv,
    agent: Agent,
    out_dir: str | os.PathLike[str],
    task_ids: Iterable[str] | None = None,
    trials: int = 1,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Run every (task, trial) not already in ``out_dir``; return all results, old and new."""
    done = {(r.task_id, r.trial): r for r in read_results(out_dir)}
    writer = ResultsWriter(out_dir)
    ids = list(task_ids) if task_ids is not None else [t.id for t in env.tasks]
    for trial in range(trials):
        for task_id in ids:
            if (task_id, trial) in done:
                continue
            result = run_episode(env, agent, task_id, trial, seed=trial)
            writer.write(result)
            done[(task_id, trial)] = result
            if on_result is not None:
                on_result(result)
    return [done[(t, k)] for k in range(trials) for t in ids if (t, k) in done]


def _rate(values: Iterable[bool]) -> float:
    flags = list(values)
    return sum(flags) / len(flags) if flags else 0.0


def summary_rows(results: list[EpisodeResult]) -> list[tuple[str, Any]]:
    """The headline numbers of a run, as (name, value) rows."""
    n = len(results)
    terminations = Counter(r.termination or "none" for r in results)
    violations = Counter(v["rule"] for r in results for v in r.reward_info.get("violations", []))
    return [
        ("episodes", n),
        ("tasks", len({r.task_id for r in results})),
        ("mean reward", round(sum(r.reward for r in results) / n, 4) if n else 0.0),
        ("state match", round(_rate(r.reward_info.get("state_match", False) for r in results), 4)),
        (
            "outputs found",
            round(_rate(all(o["found"] for o in r.reward_info.get("outputs", [])) for r in results), 4),
        ),
        ("terminations", ", ".join(f"{k} {v}" for k, v in terminations.most_common())),
        ("policy violations", ", ".join(f"{k} {v}" for k, v in violations.most_common()) or "none"),
        ("mean steps", round(sum(r.steps for r in results) / n, 1) if n else 0.0),
    ]


def format_summary(results: list[EpisodeResult], fmt: str = "simple") -> str:
    return tabulate(summary_rows(results), headers=["metric", "value"], tablefmt=fmt)


def failure_rows(results: list[EpisodeResult], limit: int = 10) -> list[tuple[str, int, str]]:
    """Why the first ``limit`` failed episodes failed: differing records and missing outputs."""
    rows = []
    for r in results:
        if r.reward >= 1.0:
            continue
        info = r.reward_info
        parts = [f"{table}: {', '.join(keys)}" for table, keys in info.get("differing", {}).items()]
        parts += [f"missing output {o['output']!r}" for o in info.get("outputs", []) if not o["found"]]
        rows.append((r.task_id, r.trial, "; ".join(parts) or str(r.termination)))
    return rows[:limit]
