"""APIGen-MT Phase 2: play every accepted task as a simulated dialogue and keep only verified ones.

For each accepted task, up to ``config.attempts`` episodes are played (an env on the task, a user
simulator, an agent) with the evaluation runner's episode loop, ``config.concurrency`` tasks at a
time (per worker, when an executor spreads them over several). The first episode with reward 1 and
no policy violation is kept in ``phase2/dialogues.jsonl`` and the task is done; every other episode
goes to ``phase2/failures.jsonl`` with a label, for DPO or RL. Re-running resumes: (task, attempt)
pairs already recorded are skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from apigen_gym.core.domain import Domain, load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.task import Task
from apigen_gym.core.user import UserSimulator
from apigen_gym.evaluation.runner import EpisodeResult, run_episode_async
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.dialogue_facts import DialogueFacts, Sent
from apigen_gym.generation.store import JsonlAppender, RunPaths, read_models
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.llm.types import Usage
from apigen_gym.players.agent import Agent
from apigen_gym.players.llm_users import BestOfNUser, LLMUser
from apigen_gym.players.model_agents import ToolCallingAgent
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.players.scripted_user import ScriptedUser
from apigen_gym.util.executors import Executor, Job, LocalExecutor, OnStep, stream
from apigen_gym.util.jsonio import RecordLine, digest, read_jsonl, write_jsonl
from apigen_gym.util.progress import LiveBar
from apigen_gym.util.version import VERSION

if TYPE_CHECKING:
    from apigen_gym.llm.client import LLMClient

Label = Literal[
    "success",
    "state_mismatch",
    "missing_output",
    "policy_violation",
    "turn_limit",
    "infrastructure",
    "model_error",
    "duplicate",
]
"""Why an episode was (not) kept. ``duplicate``: verified, but the same conversation is already kept;
``model_error``: the user's (or critic's) model kept answering what the server could not read."""
FAILURE_LABELS: tuple[Label, ...] = (
    "state_mismatch",
    "missing_output",
    "policy_violation",
    "turn_limit",
    "infrastructure",
    "model_error",
    "duplicate",
)
VERIFIED: frozenset[str] = frozenset({"success", "duplicate"})
"""Labels that end a task's attempts: it has a verified dialogue."""


class Models(BaseModel):
    """Who played the episode."""

    agent: str
    user: str
    user_best_of: int = 1
    critic: str | None = None


class Seeds(BaseModel):
    """The seeds of one episode: the run's, the env reset's (the user's is drawn from it), the agent's."""

    run: int
    episode: int
    agent: int | None = None


def attempt_ref(task_id: str, attempt: int) -> str:
    """How a record names one attempt at a task (``duplicate_of``): ``task_id#attempt``."""
    return f"{task_id}#{attempt}"


class DialogueRecord(BaseModel):
    """One Phase 2 episode, as written to ``dialogues.jsonl`` (label success) or ``failures.jsonl``."""

    task_id: str
    attempt: int = Field(ge=1)
    label: Label
    reward: float
    messages: list[dict[str, Any]]
    """The conversation in OpenAI chat format (system = policy)."""
    tools: list[dict[str, Any]]
    reward_info: dict[str, Any]
    termination: str | None
    steps: int
    error: str | None = None
    models: Models
    seeds: Seeds
    env_id: str
    env_version: str
    harness_version: str
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    seconds: float = 0.0
    digest: str
    """Hash of the conversation (tool-call ids normalised): equal conversations, equal digests."""
    duplicate_of: str | None = None
    """For ``duplicate``: ``task_id#attempt`` of the kept dialogue it repeats."""
    task: Task
    provenance: dict[str, Any] = Field(default_factory=dict)
    """The task's Phase 1 provenance (``task.meta["provenance"]``)."""

    @property
    def ref(self) -> str:
        return attempt_ref(self.task_id, self.attempt)


class Played(RecordLine[DialogueRecord]):
    """One episode as the driver takes it: the few fields it decides on (attempts left, kept or a
    duplicate) and counts, the record's JSON line, written as is, and the facts the stats add up.

    The whole record stays in the process that played the episode: pickled (a Ray worker's batch to
    the driver), a ``Played`` carries its line and its facts instead, and the driver reads the record
    from the line only when it needs it (a duplicate to relabel). Reading a dialogue's 20-30 KiB of
    JSON and its words is what the driver would otherwise do for every episode of the run.
    """

    __slots__ = ("task_id", "attempt", "label", "digest", "usage", "cost", "_facts", "_sent")
    model = DialogueRecord

    def __init__(self, record: DialogueRecord, sent: Sent | None = None):
        """``sent``: the bigrams the worker playing it has sent in this job, if it is to be pickled
        (it then sends only the others of a kept dialogue's, and adds them to ``sent``)."""
        super().__init__(record)
        self.task_id, self.attempt, self.label = record.task_id, record.attempt, record.label
        self.digest, self.usage, self.cost = record.digest, record.usage, record.cost
        self._facts: DialogueFacts | None = None
        self._sent = sent

    @property
    def ref(self) -> str:
        return attempt_ref(self.task_id, self.attempt)

    def facts(self) -> DialogueFacts:
        """The conversation as the statistics count it."""
        if self._facts is None:
            self._facts = DialogueFacts.of(self.record.messages)
        return self._facts

    def __getstate__(self) -> tuple[Any, ...]:
        facts = self._facts
        if self.label == "success":  # only kept dialogues are counted
            facts = self.facts() if self._sent is None else self.facts().to_send(self._sent)
            self._facts = facts  # pickled again (a fallback): the same facts, not fewer bigrams
        return (self.task_id, self.attempt, self.label, self.digest, self.usage, self.cost, self.line, facts)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (
            self.task_id,
            self.attempt,
            self.label,
            self.digest,
            self.usage,
            self.cost,
            self._line,
            self._facts,
        ) = state
        self._record = self._sent = None


class _Done(BaseModel):
    """The part of a record that resuming needs."""

    task_id: str
    attempt: int
    label: str
    digest: str = ""
    duplicate_of: str | None = None


class Phase2Stats(BaseModel):
    """What one call of :func:`run_phase2` did."""

    tasks: int = Field(description="accepted tasks (removed ones excluded)")
    already_done: int = Field(description="tasks finished by an earlier run (verified or out of attempts)")
    attempted: int = Field(description="tasks played in this run")
    episodes: int
    dialogues: int = Field(description="verified dialogues kept in this run")
    duplicates: int
    failures: dict[str, int] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def label_of(result: EpisodeResult) -> Label:
    """Why an episode is kept or not: infrastructure (or a model's unreadable answers), turn limit,
    state, outputs, then policy."""
    if result.error is not None:
        return "model_error" if result.error.startswith("model:") else "infrastructure"
    if result.termination == "max_steps":
        return "turn_limit"
    info = result.reward_info
    if not info.get("state_match", False):
        return "state_mismatch"
    if not all(o.get("found", False) for o in info.get("outputs", [])):
        return "missing_output"
    if info.get("violations") or result.reward < 1.0:
        return "policy_violation"
    return "success"


def conversation_digest(messages: Sequence[dict[str, Any]]) -> str:
    """A hash of the conversation that ignores tool-call ids (servers draw them at random)."""
    ids: dict[str, str] = {}
    normal = []
    for message in messages:
        m = dict(message)
        if m.get("tool_calls"):
            m["tool_calls"] = [
                {**c, "id": ids.setdefault(str(c.get("id")), f"call_{len(ids)}")} for c in m["tool_calls"]
            ]
        if "tool_call_id" in m:
            m["tool_call_id"] = ids.get(str(m["tool_call_id"]), m["tool_call_id"])
        normal.append(m)
    return digest(normal)


def episode_seed(run_seed: int, task_id: str, attempt: int) -> int:
    """The env seed of one (task, attempt): stable across runs and processes."""
    raw = hashlib.sha256(f"{run_seed}/{task_id}/{attempt}".encode()).digest()
    return int.from_bytes(raw[:4], "big") >> 1


def json_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The complete JSON object rows of a file (none when it does not exist; a torn tail ends it)."""
    if not path.is_file():
        return
    try:
        yield from (row for row in read_jsonl(path) if isinstance(row, dict))
    except ValueError:
        return


def _removed_id(row: dict[str, Any]) -> str | None:
    """The task id of a ``removed.jsonl`` row (``{"task": {...}, "reason": ...}``)."""
    task = row.get("task")
    found = task.get("id") if isinstance(task, dict) else row.get("task_id", row.get("id"))
    return None if found is None else str(found)


def accepted_tasks(paths: RunPaths) -> list[Task]:
    """Phase 1's accepted tasks, without those later removed (first occurrence of an id wins)."""
    removed = {task_id for task_id in map(_removed_id, json_rows(paths.removed)) if task_id}
    tasks: dict[str, Task] = {}
    for task in read_models(paths.accepted, Task):
        if task.id not in removed:
            tasks.setdefault(task.id, task)
    return list(tasks.values())


def read_records(path: Path) -> list[DialogueRecord]:
    """Every complete record of a Phase 2 file (a torn last line is ignored)."""
    return list(read_models(path, DialogueRecord))


def write_task_split(tasks: Iterable[Task], folder: str | Path, split: str = "accepted") -> Path:
    """The tasks as ``folder/tasks/<split>.jsonl`` (τ-bench layout), e.g. for a loopback oracle model."""
    path = Path(folder) / "tasks" / f"{split}.jsonl"
    write_jsonl(path, [t.model_dump(mode="json", exclude_none=True) for t in tasks])
    return path


class Players:
    """Makes the agent and the user of each episode from a config; owns the LLM clients."""

    def __init__(self, config: GenerationConfig, domain: Domain):
        self.config = config
        self.domain = domain
        best_of = config.user_best_of if config.user is not None else 1
        self.agent_client = self._client(config.agent)
        self.user_client = self._client(config.user)
        # best-of-N without a critic model: the user's own model critiques
        self.critic_client = self._client(config.critic) if best_of > 1 else None
        critic = (config.critic or config.user) if best_of > 1 else None
        self.models = Models(
            agent=config.agent.model if config.agent else "oracle",
            user=config.user.model if config.user else "scripted",
            user_best_of=best_of,
            critic=critic.model if critic is not None else None,
        )

    def _client(self, settings: LLMSettings | None) -> LLMClient | None:
        if settings is None:
            return None
        from apigen_gym.llm.client import LLMClient  # the HTTP stack loads only when a model is used

        return LLMClient(settings)

    def agent(self, seed: int) -> Agent:
        if self.agent_client is None:
            return OracleAgent(self.domain.tools, seed=seed)  # the seed draws its wording
        caps = self.config.max_tokens
        return ToolCallingAgent(self.agent_client, caps.cap("agent", self.config.agent), seed)

    def user(self) -> UserSimulator:
        if self.user_client is None:
            return ScriptedUser()
        config, caps = self.config, self.config.max_tokens
        cap = caps.cap("user", config.user)
        if config.user_best_of > 1:
            critic_cap = caps.cap("critic", config.critic or config.user)
            return BestOfNUser(self.user_client, self.critic_client, config.user_best_of, cap, critic_cap)
        return LLMUser(self.user_client, cap)

    async def aclose(self) -> None:
        clients = (self.agent_client, self.user_client, self.critic_client)
        for client in dict.fromkeys(c for c in clients if c is not None):
            await client.aclose()


Observer = Callable[[Played, bool], None]
"""Told of every episode of a run folder, with whether it is a kept dialogue (``dialogues.jsonl``)."""


class _Ledger:
    """What is recorded so far: attempts per task, verified tasks, kept conversations.

    With an ``observe``r, the records already in the files are read whole and shown to it.
    """

    def __init__(self, paths: RunPaths, observe: Observer | None = None):
        self.attempts: dict[str, set[int]] = {}
        self.verified: set[str] = set()
        self.kept: dict[str, str] = {}
        for path in (paths.dialogues, paths.failures):
            if observe is None:
                for row in read_models(path, _Done):
                    self.note(row)
                continue
            for record in read_models(path, DialogueRecord):
                self.note(record)
                observe(Played(record), path == paths.dialogues)

    def note(self, row: _Done | DialogueRecord | Played) -> None:
        self.attempts.setdefault(row.task_id, set()).add(row.attempt)
        if row.label in VERIFIED:
            self.verified.add(row.task_id)
        if row.label == "success" and row.digest:
            self.kept.setdefault(row.digest, attempt_ref(row.task_id, row.attempt))

    def todo(self, task: Task, attempts: int) -> list[int]:
        """The attempts still to play for ``task`` (none once it is verified)."""
        if task.id in self.verified:
            return []
        done = self.attempts.get(task.id, set())
        return [a for a in range(1, attempts + 1) if a not in done]


Phase2Item = tuple[Task, list[int]]
"""A task and the attempts still to play for it."""


class DialogueWorker:
    """The per-shard code of Phase 2: plays a task's attempts until one verifies, ``concurrency`` tasks
    at a time, and labels each episode (whether a verified one repeats a kept conversation is the
    driver's call). The same in the driver's process and in a Ray worker."""

    def __init__(self, config: GenerationConfig, max_steps: int | None = None):
        self.config = config
        self.domain = load_domain(config.domain)
        self.database = self.domain.database(config.data_dir)
        self.max_steps = max_steps
        self.players = Players(config, self.domain)
        self.env_id = f"apigen/{self.domain.name}-v0"
        self.gate = asyncio.Semaphore(config.concurrency)
        self.sent: Sent = (set(), set())
        """Bigrams of kept dialogues this worker has sent, by side (:meth:`DialogueFacts.to_send`)."""

    def _env(self, task: Task) -> ApigenEnv:
        kwargs: dict[str, Any] = {} if self.max_steps is None else {"max_steps": self.max_steps}
        return ApigenEnv(
            self.domain, database=self.database, tasks=[task], user=self.players.user(), **kwargs
        )

    def _record(self, task: Task, attempt: int, seed: int, result: EpisodeResult) -> DialogueRecord:
        provenance = task.meta.get("provenance")
        return DialogueRecord(
            task_id=task.id,
            attempt=attempt,
            label=label_of(result),
            reward=result.reward,
            messages=result.messages,
            tools=self.domain.tools.schemas,
            reward_info=result.reward_info,
            termination=result.termination,
            steps=result.steps,
            error=result.error,
            models=self.players.models,
            seeds=Seeds(run=self.config.seed, episode=seed, agent=seed),
            env_id=self.env_id,
            env_version=self.domain.version,
            harness_version=VERSION,
            usage=result.usage,
            cost=result.cost,
            seconds=result.seconds,
            digest=conversation_digest(result.messages),
            task=task,
            provenance=provenance if isinstance(provenance, dict) else {},
        )

    def run(self, shard: Sequence[Phase2Item], on_step: OnStep | None = None) -> AsyncIterator[list[Played]]:
        async def play(item: Phase2Item) -> AsyncIterator[Played]:
            task, attempts = item
            for attempt in attempts:
                seed = episode_seed(self.config.seed, task.id, attempt)
                agent = self.players.agent(seed)
                result = await run_episode_async(
                    self._env(task), agent, task.id, attempt, seed=seed, on_step=on_step
                )
                record = self._record(task, attempt, seed, result)
                yield Played(record, self.sent)
                if record.label in VERIFIED:
                    return

        return stream(shard, play, self.gate, self.config.concurrency)

    async def aclose(self) -> None:
        await self.players.aclose()


def in_flight_limit(config: GenerationConfig) -> int | None:
    """The smallest ``max_in_flight`` of the run's models (``None``: no limit): a run has no more workers."""
    models = [config.proposer, config.user, config.critic, config.agent, *config.judges]
    limits = [m.max_in_flight for m in models if m is not None and m.max_in_flight is not None]
    return min(limits) if limits else None


class _Phase2Run:
    """One pass over the accepted tasks, as the driver: schedules them on an executor's workers, keeps
    the first of equal conversations, writes every episode."""

    def __init__(
        self,
        config: GenerationConfig,
        paths: RunPaths,
        max_steps: int | None,
        progress: bool,
        executor: Executor | None = None,
        observe: Observer | None = None,
    ):
        self.config = config
        self.paths = paths
        self.max_steps = max_steps
        self.progress = progress
        self.executor = executor or LocalExecutor()
        self.observe = observe
        self.ledger = _Ledger(paths, observe)
        self.labels: Counter[str] = Counter()
        self.usage = Usage()
        self.cost = 0.0
        self.steps = 0
        self.bar: LiveBar | None = None

    def _stepped(self) -> None:
        """Live progress: steps taken so far (a slow server's episodes are seen moving)."""
        self.steps += 1
        if self.bar is not None:
            self.bar.moved(self._postfix)

    def _postfix(self) -> dict[str, Any]:
        kept = self.labels["success"]
        return {"kept": kept, "failed": sum(self.labels.values()) - kept, "steps": self.steps}

    def _keep(self, played: Played) -> Played:
        """A verified episode whose conversation is already kept becomes a ``duplicate``."""
        if played.label != "success":
            return played
        first = self.ledger.kept.get(played.digest)
        if first is None or first == played.ref:
            return played
        return Played(played.record.model_copy(update={"label": "duplicate", "duplicate_of": first}))

    async def run(self) -> Phase2Stats:
        started, cpu = time.perf_counter(), time.process_time()
        tasks = accepted_tasks(self.paths)
        todo = [(t, a) for t in tasks if (a := self.ledger.todo(t, self.config.attempts))]
        bar = self.bar = LiveBar(len(todo), "task", self.progress)
        with (
            JsonlAppender(self.paths.dialogues) as dialogues,
            JsonlAppender(self.paths.failures) as failures,
            bar,
        ):

            def record(played: Played, line: str | None = None) -> None:
                kept = self._keep(played)
                file = dialogues if kept.label == "success" else failures
                file.write(kept.held, kept.line)
                self.ledger.note(kept)
                if self.observe is not None:
                    self.observe(kept, file is dialogues)
                self.labels[kept.label] += 1
                self.usage = self.usage + kept.usage
                self.cost += kept.cost
                if kept.label in VERIFIED or kept.attempt == self.config.attempts:
                    bar.finished(self._postfix)

            def rebuild(item: Phase2Item) -> Phase2Item | None:
                task = item[0]
                left = [a for a in self.ledger.todo(task, self.config.attempts) if a in item[1]]
                return (task, left) if left else None

            job: Job[Phase2Item, Played] = Job(
                partial(DialogueWorker, self.config, self.max_steps),
                record,
                rebuild=rebuild,
                data_dirs=[self.config.data_dir] if self.config.data_dir is not None else [],
                concurrency=self.config.concurrency,
                max_workers=in_flight_limit(self.config),
                on_step=self._stepped,
            )
            async with self.executor.pool(job) as pool:
                await pool.run(todo)
        return Phase2Stats(
            tasks=len(tasks),
            already_done=len(tasks) - len(todo),
            attempted=len(todo),
            episodes=sum(self.labels.values()),
            dialogues=self.labels["success"],
            duplicates=self.labels["duplicate"],
            failures={k: v for k, v in sorted(self.labels.items()) if k != "success"},
            usage=self.usage,
            cost=round(self.cost, 8),
            seconds=round(time.perf_counter() - started, 6),
            cpu_seconds=round(time.process_time() - cpu, 6),
        )


async def run_phase2_async(
    config: GenerationConfig,
    paths: RunPaths,
    *,
    max_steps: int | None = None,
    progress: bool = False,
    executor: Executor | None = None,
    observe: Observer | None = None,
) -> Phase2Stats:
    """:func:`run_phase2` inside a running event loop."""
    return await _Phase2Run(config, paths, max_steps, progress, executor, observe).run()


def run_phase2(
    config: GenerationConfig,
    paths: RunPaths,
    *,
    max_steps: int | None = None,
    progress: bool = False,
    executor: Executor | None = None,
    observe: Observer | None = None,
) -> Phase2Stats:
    """Play the accepted tasks not yet done; keep verified dialogues, label the rest; resumable.

    ``max_steps``: agent actions before an episode is cut (``turn_limit``); default: the env's.
    ``executor``: where the episodes are played (default: this process); only this process writes.
    ``observe``: told of every episode of the folder, those recorded before included (for the stats).
    """
    return asyncio.run(
        run_phase2_async(
            config, paths, max_steps=max_steps, progress=progress, executor=executor, observe=observe
        )
    )
