"""Run agents on a split and keep every episode: one JSON line each, appended and flushed.

Re-running with the same output folder resumes: finished (task, trial) pairs are read back and
skipped, so a killed run loses nothing that was written. The folder is bound to the settings that
decide its results (``config.json``: env, data, split, agent, user, models, limits, scoring), so a
run with other settings is refused instead of mixing with it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from apigen_gym.core.env import ApigenEnv
from apigen_gym.evaluation.records import Episode, EpisodeResult, EpisodeSummary, EvalResults
from apigen_gym.llm.types import LLMError, Usage
from apigen_gym.players.agent import Agent
from apigen_gym.util import jsonio, runconfig
from apigen_gym.util.executors import Executor, Job, LocalExecutor, OnStep, stream
from apigen_gym.util.jsonio import JsonlAppender, read_models
from apigen_gym.util.progress import LiveBar

if TYPE_CHECKING:
    from apigen_gym.llm.client import LLMClient

RESULTS_FILE = "results.jsonl"


def _llm_meta(agent: object, user: object) -> dict[str, Any]:
    """What the model players noted about their answers (``llm_notes``), and their ``max_tokens`` caps."""
    notes: Counter[str] = Counter()
    caps: dict[str, int] = {}
    for role, party in (("agent", agent), ("user", user)):
        notes.update(getattr(party, "notes", None) or {})
        cap = getattr(party, "max_tokens", None)
        if isinstance(cap, int):
            caps[role] = cap
    meta: dict[str, Any] = {"llm_notes": dict(sorted(notes.items()))} if notes else {}
    if caps:
        meta["max_tokens"] = caps
    return meta


def _spent(*parties: object) -> tuple[Usage, float]:
    """Tokens and cost the agent and the user simulator spent in this episode."""
    usage, cost = Usage(), 0.0
    for party in parties:
        usage = usage + getattr(party, "usage", Usage())
        cost += float(getattr(party, "cost", 0.0))
    return usage, round(cost, 8)


async def run_episode_async(
    env: ApigenEnv,
    agent: Agent,
    task_id: str,
    trial: int = 0,
    seed: int | None = None,
    on_step: Callable[[], None] | None = None,
) -> EpisodeResult:
    """Play one episode to its end; an LLM failure ends it with a labelled error and reward 0.

    ``on_step`` is called after every step (live progress for slow servers).
    """
    started = time.perf_counter()
    reward, error = 0.0, None
    step_info: dict[str, Any] = {}
    try:
        observation, info = await env.reset_async(seed=seed, options={"task_id": task_id})
        agent.reset(info, env.task, env)
        done = False
        while not done:
            action = await agent.act_async(observation)
            observation, step_reward, terminated, truncated, step_info = await env.step_async(action)
            reward, done = float(step_reward), terminated or truncated
            if on_step is not None:
                on_step()
    except LLMError as exc:
        reward, error = 0.0, exc.label
    usage, cost = _spent(agent, env.user)
    return EpisodeResult(
        task_id=task_id,
        trial=trial,
        reward=reward,
        reward_info=step_info.get("reward_info", {}),
        messages=env.messages,
        termination="error" if error else env.termination,
        steps=env.steps_taken,
        env_id=f"apigen/{env.domain.name}-v0",
        agent=agent.name,
        user=env.user.name,
        seconds=round(time.perf_counter() - started, 6),
        error=error,
        usage=usage,
        cost=cost,
        meta=_llm_meta(agent, env.user),
    )


def run_episode(
    env: ApigenEnv, agent: Agent, task_id: str, trial: int = 0, seed: int | None = None
) -> EpisodeResult:
    """:func:`run_episode_async` from synchronous code."""
    return asyncio.run(run_episode_async(env, agent, task_id, trial, seed))


def read_results(out_dir: str | os.PathLike[str]) -> list[EpisodeResult]:
    """Every complete record in ``out_dir/results.jsonl``; a torn last line (a killed run) is ignored,
    other unreadable lines are skipped with a warning that says how many and where."""
    return list(read_models(Path(out_dir) / RESULTS_FILE, EpisodeResult))


def run_settings(env: ApigenEnv, agent: Agent, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What decides the results in an eval folder, as saved in its ``config.json``.

    ``extra`` adds what the env and agent objects do not tell (the models behind them, a seed).
    """
    data_dir = None if env.data_dir is None else str(Path(env.data_dir).resolve())
    return {
        "env_id": f"apigen/{env.domain.name}-v0",
        "data_dir": data_dir,
        "split": env.split,
        "agent": agent.name,
        "user": env.user.name,
        "max_steps": env.max_steps,
        "output_mode": env.output_mode,
        "reward_mode": env.reward_mode,
        "violation_penalty": env.violation_penalty,
        **(extra or {}),
        "versions": {"env": env.domain.version},
    }


class ResultsWriter(JsonlAppender):
    """Appends one episode per line to ``out_dir/results.jsonl``, flushed before returning."""

    def __init__(self, out_dir: str | os.PathLike[str]):
        super().__init__(Path(out_dir) / RESULTS_FILE)


class EpisodeWorker:
    """The per-shard code of an evaluation: (task, trial) pairs played as episodes, ``concurrency`` at a
    time (shared by the shards it plays at once). The same in the driver's process and in a Ray worker.
    """

    def __init__(
        self,
        make_env: Callable[[], ApigenEnv],
        make_agent: Callable[[], Agent],
        concurrency: int = 1,
        clients: Sequence[LLMClient] = (),
    ):
        self.make_env = make_env
        self.make_agent = make_agent
        self.concurrency = max(1, concurrency)
        self.clients = clients
        self.gate = asyncio.Semaphore(self.concurrency)

    def run(
        self, shard: Sequence[tuple[str, int]], on_step: OnStep | None = None
    ) -> AsyncIterator[list[Episode]]:
        async def play(item: tuple[str, int]) -> AsyncIterator[Episode]:
            task_id, trial = item
            env, agent = self.make_env(), self.make_agent()
            yield Episode(await run_episode_async(env, agent, task_id, trial, seed=trial, on_step=on_step))

        return stream(shard, play, self.gate, self.concurrency)

    async def aclose(self) -> None:
        for client in dict.fromkeys(self.clients):
            await client.aclose()


def in_flight_limit(clients: Iterable[LLMClient]) -> int | None:
    """The smallest ``max_in_flight`` of the clients (``None``: no limit): a run has no more workers."""
    limits = [c.settings.max_in_flight for c in clients if c.settings.max_in_flight is not None]
    return min(limits) if limits else None


def evaluate(
    make_env: Callable[[], ApigenEnv],
    make_agent: Callable[[], Agent],
    out_dir: str | os.PathLike[str],
    task_ids: Iterable[str] | None = None,
    trials: int = 1,
    concurrency: int = 1,
    progress: bool = False,
    clients: Sequence[LLMClient] = (),
    retry_errors: bool = False,
    settings: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
) -> EvalResults:
    """Run every (task, trial) not already in ``out_dir``; return all results, old and new (each
    record read from its line when first asked for, after a Ray run; ``.summaries`` reads none).

    ``make_env`` and ``make_agent`` are called once per episode, so episodes in flight share nothing.
    The LLM ``clients`` they use are closed at the end. ``settings`` adds to what binds the folder
    (:func:`run_settings`); a folder bound to other settings raises
    :class:`~apigen_gym.util.runconfig.SettingsMismatch` before anything runs. ``executor`` says where
    episodes are played (default: this process; ``apigen_gym.integrations.ray.RayExecutor``: a Ray
    cluster, ``concurrency`` per worker); the results are the same either way.
    """

    async def run_and_close() -> EvalResults:
        try:
            return await run_async(
                make_env,
                make_agent,
                out_dir,
                task_ids,
                trials,
                concurrency,
                progress,
                retry_errors,
                settings,
                executor=executor,
                clients=clients,
            )
        finally:
            for client in dict.fromkeys(clients):
                await client.aclose()

    return asyncio.run(run_and_close())


async def run_async(
    make_env: Callable[[], ApigenEnv],
    make_agent: Callable[[], Agent],
    out_dir: str | os.PathLike[str],
    task_ids: Iterable[str] | None = None,
    trials: int = 1,
    concurrency: int = 1,
    progress: bool = False,
    retry_errors: bool = False,
    settings: Mapping[str, Any] | None = None,
    *,
    executor: Executor | None = None,
    clients: Sequence[LLMClient] = (),
) -> EvalResults:
    """:func:`evaluate` inside a running event loop: ``concurrency`` episodes in flight (per worker).

    Episodes that ended in an infrastructure error count as finished (a failure) unless
    ``retry_errors``: then their rows are removed and they run again. Only this process writes
    ``results.jsonl``, whichever ``executor`` plays the episodes. ``clients``: the LLM clients the
    players use (their ``max_in_flight`` caps the number of workers; the worker closes them).
    """
    probe = make_env()
    runconfig.bind(out_dir, run_settings(probe, make_agent(), settings))
    done = {(r.task_id, r.trial): Episode(r) for r in read_results(out_dir)}
    if retry_errors and any(e.summary.error for e in done.values()):
        done = {key: e for key, e in done.items() if not e.summary.error}
        _drop_error_rows(Path(out_dir) / RESULTS_FILE)
    ids = list(task_ids) if task_ids is not None else [t.id for t in probe.tasks]
    todo = [(t, k) for k in range(trials) for t in ids if (t, k) not in done]
    with ResultsWriter(out_dir) as writer, _Progress(len(todo), progress) as bar:

        def record(episode: Episode, line: str | None = None) -> None:
            writer.write(episode.held, episode.line)
            done[episode.key] = episode
            bar.update(episode.summary)

        job: Job[tuple[str, int], Episode] = Job(
            partial(EpisodeWorker, make_env, make_agent, concurrency, clients),
            record,
            rebuild=lambda item: None if item in done else item,
            data_dirs=[probe.data_dir] if probe.data_dir is not None else [],
            concurrency=concurrency,
            max_workers=in_flight_limit(clients),
            on_step=bar.step,
        )
        async with (executor or LocalExecutor()).pool(job) as pool:
            await pool.run(todo)
    return EvalResults([done[(t, k)] for k in range(trials) for t in ids if (t, k) in done])


def _drop_error_rows(path: Path) -> None:
    """Remove the episodes an infrastructure error ended; every other line stays byte for byte."""
    kept = []
    for line in path.read_bytes().splitlines(keepends=True):
        whole = line.endswith(b"\n")
        try:
            record = EpisodeResult.model_validate_json(line)
        except ValueError:
            if whole:
                kept.append(line)  # not ours to judge: an unreadable line stays (a torn last one goes)
            continue
        if record.error is None:
            kept.append(line if whole else line + b"\n")
    jsonio.atomic_write_bytes(path, b"".join(kept))


class _Progress(LiveBar):
    """Episodes done, with mean reward, steps, tokens, cost and errors so far (silent when disabled).

    Steps are shown as they happen, so that a slow server's episodes are seen moving.
    """

    def __init__(self, total: int, enabled: bool):
        super().__init__(total, "episode", enabled)
        self.rewards = 0.0
        self.count = 0
        self.tokens = 0
        self.cost = 0.0
        self.errors = 0
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        self.moved(self._postfix)

    def _postfix(self) -> dict[str, Any]:
        return {
            "reward": f"{self.rewards / self.count:.3f}" if self.count else "-",
            "steps": self.steps,
            "tokens": self.tokens,
            "cost": f"${self.cost:.4f}",
            "errors": self.errors,
        }

    def update(self, result: EpisodeSummary) -> None:
        self.count += 1
        self.rewards += result.reward
        self.tokens += result.usage.total_tokens
        self.cost += result.cost
        self.errors += result.error is not None
        self.finished(self._postfix)


def _rate(values: Iterable[bool]) -> float:
    flags = list(values)
    return sum(flags) / len(flags) if flags else 0.0


def _outputs_found(result: EpisodeSummary) -> bool:
    """Every required output was said (an episode stopped by an error said nothing that counts)."""
    outputs = result.reward_info.get("outputs", [])
    return result.error is None and all(o["found"] for o in outputs)


def needs_action(result: EpisodeSummary) -> bool | None:
    """Whether the episode's task needs a change or an output (None for records that do not say)."""
    changes = result.reward_info.get("gold_changes")
    if changes is None:
        return None
    return bool(changes or result.reward_info.get("outputs"))


def summary_rows(results: Sequence[EpisodeSummary]) -> list[tuple[str, Any]]:
    """The headline numbers of a run, as (name, value) rows."""
    n = len(results)
    terminations = Counter(r.termination or "none" for r in results)
    violations = Counter(v["rule"] for r in results for v in r.reward_info.get("violations", []))
    needs = {r.task_id: flag for r in results if (flag := needs_action(r)) is not None}
    do_nothing = round(sum(not flag for flag in needs.values()) / len(needs), 4) if needs else "n/a"
    return [
        ("episodes", n),
        ("tasks", len({r.task_id for r in results})),
        ("mean reward", round(sum(r.reward for r in results) / n, 4) if n else 0.0),
        ("do-nothing baseline", do_nothing),
        ("state match", round(_rate(r.reward_info.get("state_match", False) for r in results), 4)),
        ("outputs found", round(_rate(_outputs_found(r) for r in results), 4)),
        ("infra errors", sum(r.error is not None for r in results)),
        ("terminations", ", ".join(f"{k} {v}" for k, v in terminations.most_common())),
        ("policy violations", ", ".join(f"{k} {v}" for k, v in violations.most_common()) or "none"),
        ("mean steps", round(sum(r.steps for r in results) / n, 1) if n else 0.0),
    ]


def format_summary(results: Sequence[EpisodeSummary], fmt: str = "simple") -> str:
    return tabulate(summary_rows(results), headers=["metric", "value"], tablefmt=fmt)


def failure_rows(results: Sequence[EpisodeSummary], limit: int = 10) -> list[tuple[str, int, str]]:
    """Why the first ``limit`` failed episodes failed: differing records and missing outputs."""
    rows = []
    for r in results:
        if r.reward >= 1.0:
            continue
        info = r.reward_info
        parts = [f"{table}: {', '.join(keys)}" for table, keys in info.get("differing", {}).items()]
        parts += [f"missing output {o['output']!r}" for o in info.get("outputs", []) if not o["found"]]
        rows.append((r.task_id, r.trial, r.error or "; ".join(parts) or str(r.termination)))
    return rows[:limit]
