"""APIGen-MT phase 1: propose task blueprints, validate them, feed failures back, keep verified tasks.

For each blueprint index ``i`` (its randomness seeded from ``(config.seed, i)``): sample a context,
propose, validate (format → execution → policy → committee), and on rejection send a summary of the
failures back to the proposer, up to ``config.rounds()`` rounds. Validated tasks are deduplicated
and decontaminated against the evaluation splits, then accepted tasks of the same user are
recombined. Every round is a row of ``proposals.jsonl``; re-running resumes where a run stopped.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import math
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from apigen_gym.core.database import Database
from apigen_gym.core.domain import Domain, load_domain
from apigen_gym.core.task import TWIST_KINDS, Task, TwistKind
from apigen_gym.generation.blueprint import (
    STAGES,
    Blueprint,
    ContextSummary,
    Outcome,
    ProposalError,
    ProposalRecord,
    RemovedRecord,
    Source,
    Verdict,
)
from apigen_gym.generation.config import GenerationConfig, bind_run
from apigen_gym.generation.context import Context, ContextSampler
from apigen_gym.generation.decontam import Decontaminator, Deduplicator
from apigen_gym.generation.proposed import Proposed, RoundFacts
from apigen_gym.generation.proposers import LLMProposer, Proposer, TemplateProposer
from apigen_gym.generation.recombine import Recombiner, candidates
from apigen_gym.generation.store import JsonlAppender, RunPaths, read_models
from apigen_gym.generation.validators import Committee, RuleCheck, check_rules, feedback_summary
from apigen_gym.kit.sampling import bucket
from apigen_gym.llm.types import Usage
from apigen_gym.util.executors import Executor, Job, LocalExecutor, OnStep, Pool, stream
from apigen_gym.util.jsonio import read_json, write_json
from apigen_gym.util.version import VERSION

if TYPE_CHECKING:
    from apigen_gym.llm.client import LLMClient

PAIR_SHARE = 0.5
"""Chance that an odd blueprint index serves the same user as the one before (recombination material)."""
MAX_BLUEPRINTS_PER_TASK = 10
"""Blueprints tried per wanted task before a run gives up."""
SPECULATION = 1.2
"""An offline run tries this many times the recombinations it expects to need (at the acceptance rate
seen so far), so that few batches, each waiting for its slowest item, are needed to reach the target."""
FEW_SHOT_SPLIT = "train"


class StageCount(BaseModel):
    """How many proposals reached a validator and how many it passed."""

    reached: int = 0
    passed: int = 0

    @property
    def rate(self) -> float:
        return self.passed / self.reached if self.reached else 0.0


class Phase1Stats(BaseModel):
    """Counts and rates of a phase-1 run (the whole run folder, resumed parts included)."""

    domain: str
    seed: int
    target: int
    blueprints: int = 0
    """Blueprint indices decided (accepted, removed, or rejected after every round)."""
    proposals: int = 0
    """Proposal rounds made."""
    accepted: int = 0
    """Tasks in ``accepted.jsonl`` from proposals."""
    recombined: int = 0
    """Tasks in ``accepted.jsonl`` from recombination."""
    stages: dict[str, StageCount] = Field(default_factory=dict)
    stage_rates: dict[str, float] = Field(default_factory=dict)
    rejections: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Failed proposal rounds by stage, then by reason kind (a round counts once per kind)."""
    feedback_rounds: dict[int, int] = Field(default_factory=dict)
    """Validated blueprints by the round they passed in (1: first try)."""
    exhausted: int = 0
    """Blueprints still rejected after the last round."""
    recombinations_tried: int = 0
    recombinations_accepted: int = 0
    recombination_rejections: dict[str, int] = Field(default_factory=dict)
    duplicates_removed: int = 0
    contaminated_removed: int = 0
    decontaminated_against: dict[str, int] = Field(default_factory=dict)
    """Evaluation splits checked, with their sizes."""
    abstentions: int = 0
    """Judge calls that failed or answered unreadably."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    """Wall time of this invocation."""


def evaluation_splits(domain: Domain, config: GenerationConfig) -> dict[str, list[Task]]:
    """The tasks of every split named in ``decontaminate_against``, shipped and in ``data_dir``."""
    found: dict[str, list[Task]] = {}
    for split in config.decontaminate_against:
        tasks: dict[str, Task] = {}
        for folder in dict.fromkeys((None, config.data_dir)):
            if split in domain.splits(folder):
                tasks.update((t.id, t) for t in domain.tasks(split, folder))
        if tasks:
            found[split] = list(tasks.values())
    return found


def generation_users(domain: Domain, database: Database, config: GenerationConfig) -> list[str]:
    """Users outside the buckets of the evaluation splits, so no generated task serves a test user.

    All users when the domain's sampler defines no such splits.
    """
    try:
        splits = importlib.import_module(f"apigen_gym.domains.{domain.name}.sampler").SPLITS
    except (ModuleNotFoundError, AttributeError):
        splits = {}
    held_out = {b for name in config.decontaminate_against if name in splits for b in splits[name].buckets}
    users = sorted(database.table("users"))
    return [u for u in users if bucket(u) not in held_out] or users


def example_split(domain: Domain, config: GenerationConfig) -> str | None:
    """The shipped split the proposer's examples come from: train, else one not evaluated on."""
    shipped = [s for s in domain.splits() if s not in config.decontaminate_against]
    return FEW_SHOT_SPLIT if FEW_SHOT_SPLIT in shipped else next(iter(shipped), None)


def few_shot_pool(domain: Domain, config: GenerationConfig, accepted: Sequence[Task]) -> list[Task]:
    """Examples for the proposer: the train split, else a split not evaluated on, else accepted tasks."""
    split = example_split(domain, config)
    return domain.tasks(split) if split is not None else list(accepted)


def provenance(
    run: Phase1Worker,
    blueprint: Blueprint,
    context: ContextSummary | None,
    round_: int,
    feedback: list[str],
    verdicts: list[Verdict],
    check: RuleCheck,
) -> dict[str, Any]:
    committee = next((v for v in verdicts if v.stage == "committee"), None)
    return {
        "source": blueprint.source,
        "proposer_model": blueprint.model,
        "persona": context.persona if context else None,
        "context": context.model_dump(mode="json") if context else None,
        "rounds": round_,
        "feedback": feedback,
        "votes": committee.details.get("votes", []) if committee else [],
        "state_change": check.state_change,
        "parents": blueprint.parents,
        "seed": run.config.seed,
        "env_version": run.domain.version,
        "harness_version": VERSION,
    }


@dataclass
class Settled:
    """How validation ended: ``outcome`` is ``None`` when a validator rejected."""

    verdicts: list[Verdict]
    outcome: Outcome | None = None
    task: Task | None = None
    removal: RemovedRecord | None = None


@dataclass(frozen=True)
class ProposalItem:
    """Blueprint ``index`` to decide, going on after the rounds already recorded for it."""

    index: int
    earlier: tuple[ProposalRecord, ...] = ()


@dataclass(frozen=True)
class RecombinationItem:
    """One recombination to try: the ``position``-th candidate group of accepted tasks."""

    position: int
    group: tuple[Task, ...]


Phase1Item = ProposalItem | RecombinationItem


def _key(item: Phase1Item) -> tuple[str, int]:
    """What an item decides: (``proposal``, index) or (``recombination``, position), as its row's key."""
    if isinstance(item, ProposalItem):
        return "proposal", item.index
    return "recombination", item.position


def in_parallel(config: GenerationConfig, proposer: Proposer | None = None) -> bool:
    """Whether blueprints are decided ``concurrency`` at a time (models answer them), or one by one."""
    custom = proposer is not None and not isinstance(proposer, TemplateProposer)
    return config.proposer is not None or bool(config.judges) or custom


def in_flight_limit(config: GenerationConfig) -> int | None:
    """The smallest ``max_in_flight`` of the Phase 1 models (``None``: no limit)."""
    limits = [m.max_in_flight for m in (config.proposer, *config.judges) if m is not None]
    return min((n for n in limits if n is not None), default=None)


def duplicate(task: Task, same: str) -> RemovedRecord:
    return RemovedRecord(
        task=task, reason="duplicate", detail=f"same user, gold actions and outputs as {same}", overlaps=same
    )


class Phase1Worker:
    """The per-shard code of Phase 1: proposes and validates blueprints (feedback rounds included) and
    tries recombinations, yielding one row per round (as the driver takes it: a :class:`Proposed`).
    The same in the driver's process and in a Ray worker.

    Duplicates are checked against the tasks accepted when the run started (``seen``: signature → id);
    a blueprint that passes is accepted provisionally, and the driver, which knows what was accepted
    since, admits it or removes it as a duplicate (:meth:`Phase1Run.admit`).
    """

    def __init__(
        self,
        config: GenerationConfig,
        seen: Mapping[str, str] | None = None,
        examples: Sequence[Task] = (),
        proposer: Proposer | None = None,
    ):
        self.config = config
        self.domain = load_domain(config.domain)
        self.database = self.domain.database(config.data_dir)
        self.limiter = asyncio.Semaphore(config.concurrency)
        self.clients: list[LLMClient] = []
        proposer_client = self._client(config.proposer) if config.proposer else None
        if proposer is not None:
            self.proposer: Proposer = proposer
        elif proposer_client is not None:
            cap = config.max_tokens.cap("proposer", config.proposer)
            self.proposer = LLMProposer(proposer_client, self.limiter, cap, config.prompt_budget)
        else:
            self.proposer = TemplateProposer.for_domain(self.domain, self.database)
        judges = [self._client(s) for s in config.judges]
        self.committee = (
            Committee(
                judges,
                config.acceptance_threshold,
                self.limiter,
                config.max_tokens.judge,
                config.prompt_budget,
            )
            if judges
            else None
        )
        self.recombiner = Recombiner(
            proposer_client, self.limiter, config.max_tokens.cap("recombine", config.proposer)
        )
        self.width = config.concurrency if in_parallel(config, proposer) else 1
        self.gate = asyncio.Semaphore(self.width)
        self.dedup = Deduplicator.of(seen or {})
        self.decontaminator = Decontaminator(self.domain, evaluation_splits(self.domain, config))
        pool = few_shot_pool(self.domain, config, examples)
        self.sampler = ContextSampler(self.domain, self.database, pool)
        self.users = generation_users(self.domain, self.database, config)
        self.pairing = PAIR_SHARE if config.recombine > 0 else 0.0

    def _client(self, settings: Any) -> LLMClient:
        from apigen_gym.llm.client import LLMClient  # the HTTP stack loads only when a model is used

        client = LLMClient(settings, random.Random(f"{self.config.seed}/llm/{len(self.clients)}"))
        self.clients.append(client)
        return client

    def run(
        self, shard: Sequence[Phase1Item], on_step: OnStep | None = None
    ) -> AsyncIterator[list[Proposed]]:
        async def work(item: Phase1Item) -> AsyncIterator[Proposed]:
            if isinstance(item, ProposalItem):
                async for row in self.decide(item):
                    yield Proposed(row)
            else:
                yield Proposed(await self.recombine(item))

        return stream(shard, work, self.gate, self.width)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    def admit(self, task: Task) -> tuple[Outcome, RemovedRecord | None]:
        """Accepted, or removed as a duplicate of an accepted task or overlapping an evaluation task."""
        same = self.dedup.duplicate_of(task)
        if same is not None:
            return "duplicate", duplicate(task, same)
        overlap = self.decontaminator.overlap(task)
        if overlap is not None:
            removal = RemovedRecord(
                task=task,
                reason="contaminated",
                detail=overlap.detail,
                overlaps=overlap.task_id,
                split=overlap.split,
            )
            return "contaminated", removal
        return "accepted", None

    # --- proposals ------------------------------------------------------------------------------

    def user_for(self, index: int) -> str:
        """The user of blueprint ``index``: fresh, or (for some odd indices) the previous one's."""
        if index % 2 and random.Random(f"{self.config.seed}/pair/{index}").random() < self.pairing:
            return self.user_for(index - 1)
        return random.Random(f"{self.config.seed}/user/{index}").choice(self.users)

    def twist_for(self, index: int) -> TwistKind | None:
        """The twist blueprint ``index`` must have: for ``config.evolving`` of them, a kind by chance."""
        rng = random.Random(f"{self.config.seed}/{index}/twist")
        return rng.choice(TWIST_KINDS) if rng.random() < self.config.evolving else None

    def context(self, index: int) -> Context:
        rng = random.Random(f"{self.config.seed}/{index}/context")
        return self.sampler.sample(rng, self.user_for(index), self.twist_for(index))

    async def settle(
        self,
        proposal: Blueprint | ProposalError,
        policy: str,
        task_id: str,
        context: ContextSummary | None,
        round_: int = 1,
        feedback: Sequence[str] = (),
    ) -> Settled:
        """Rules, then duplicate and overlap checks, then the committee (so removed tasks cost no review)."""
        check = check_rules(self.domain, self.database, proposal)
        verdicts = list(check.verdicts)
        if not check.passed or not isinstance(proposal, Blueprint):
            return Settled(verdicts)

        def as_task() -> Task:
            meta = provenance(self, proposal, context, round_, list(feedback), verdicts, check)
            return self.make_task(task_id, proposal, meta)

        outcome, removal = self.admit(as_task())
        if removal is None and self.committee is not None:
            verdicts.append(await self.committee.review(self.domain, proposal, check.session, policy))
            if not verdicts[-1].passed:
                return Settled(verdicts)
        task = as_task()
        return Settled(verdicts, outcome, task if removal is None else None, removal)

    def task_id(self, index: int, recombined: bool = False) -> str:
        return task_id(self.domain.name, self.config.seed, index, recombined)

    def make_task(self, task_id: str, blueprint: Blueprint, meta: dict[str, Any]) -> Task:
        return Task(
            id=task_id,
            user_id=blueprint.user_id,
            instruction=blueprint.instruction,
            goal=blueprint.goal,
            actions=blueprint.actions,
            outputs=blueprint.outputs,
            meta={"split": "generated", "source": blueprint.source, **blueprint.meta, "provenance": meta},
        )

    async def decide(self, item: ProposalItem) -> AsyncIterator[ProposalRecord]:
        """Propose blueprint ``index`` round after round until it is accepted, removed or out of rounds."""
        index = item.index
        context = self.context(index)
        summary = context.summary()
        policy = "\n\n".join(f"## {s.title}\n{s.text}" for s in context.policy)
        earlier = sorted(item.earlier, key=lambda r: r.round)
        feedback = [r.summary or "" for r in earlier]
        for round_ in range(len(earlier) + 1, self.config.rounds() + 1):
            rng = random.Random(f"{self.config.seed}/{index}/{round_}")
            proposal = await self.proposer.propose(context, list(feedback), rng)
            settled = await self.settle(proposal, policy, self.task_id(index), summary, round_, feedback)
            verdicts = settled.verdicts
            row = ProposalRecord(
                index=index,
                round=round_,
                source=proposal.source if isinstance(proposal, Blueprint) else self._source(proposal),
                model=self.proposer.model,
                context=summary,
                feedback=list(feedback),
                blueprint=proposal if isinstance(proposal, Blueprint) else None,
                error=proposal if isinstance(proposal, ProposalError) else None,
                verdicts=verdicts,
                outcome="retry" if round_ < self.config.rounds() else "rejected",
                usage=proposal.usage + sum((v.usage for v in verdicts), Usage()),
                cost=proposal.cost + sum(v.cost for v in verdicts),
            )
            if settled.outcome is not None:
                yield row.model_copy(
                    update={"outcome": settled.outcome, "task": settled.task, "removal": settled.removal}
                )
                return
            text = feedback_summary(proposal, verdicts)
            yield row.model_copy(update={"summary": text})
            feedback.append(text)

    async def recombine(self, item: RecombinationItem) -> ProposalRecord:
        """Try one recombination: re-executed from the initial state, re-checked, reviewed."""
        blueprint, note = await self.recombiner.blueprint(self.domain, item.group)
        writes = [a.name for a in blueprint.actions]
        policy = "\n\n".join(f"## {s.title}\n{s.text}" for s in self.sampler.policy.relevant(writes))
        settled = await self.settle(blueprint, policy, self.task_id(item.position, recombined=True), None)
        verdicts = settled.verdicts
        row = ProposalRecord(
            kind="recombination",
            index=item.position,
            source="recombined",
            model=blueprint.model,
            blueprint=blueprint,
            verdicts=verdicts,
            outcome=settled.outcome or "rejected",
            parents=blueprint.parents,
            task=settled.task,
            removal=settled.removal,
            summary=note,
            usage=blueprint.usage + sum((v.usage for v in verdicts), Usage()),
            cost=blueprint.cost + sum(v.cost for v in verdicts),
        )
        if settled.outcome is None and note is None:
            row = row.model_copy(update={"summary": feedback_summary(blueprint, verdicts)})
        return row

    @staticmethod
    def _source(error: ProposalError) -> Source:
        return "llm" if error.model else "template"


def task_id(domain: str, seed: int, index: int, recombined: bool = False) -> str:
    return f"{domain}-gen-{seed}-{'r' if recombined else ''}{index:05d}"


Files = tuple[JsonlAppender, JsonlAppender, JsonlAppender]
RoundObserver = Callable[[RoundFacts], None]
"""Told of every row of a run folder, as recorded (those already in the files first)."""


class Phase1Run:
    """One phase-1 run over a run folder, as its driver: state read back from its files, extended with
    the rows its workers send, written by this process alone.

    Blueprints are decided in batches (as many as are still wanted). Rounds that go on are written as
    they come; a row that decides its blueprint waits until every lower index of the batch is decided,
    so that which of two equal tasks is kept depends on the index, not on which worker was faster.
    Deciding rows are recorded in that order until the target of their kind is met, and no further:
    an offline run tries more recombinations at once than it needs (:data:`SPECULATION`) and keeps
    the same rows as one that tries them a batch at a time.
    """

    def __init__(
        self,
        config: GenerationConfig,
        paths: RunPaths,
        proposer: Proposer | None = None,
        executor: Executor | None = None,
        observe: RoundObserver | None = None,
    ):
        self.config = config
        self.paths = paths
        self.domain = load_domain(config.domain)
        self.proposer = proposer
        self.executor = executor or LocalExecutor()
        self.unfinished: dict[int, list[ProposalRecord]] = {}
        """Rounds of blueprints not decided yet, by index (an interrupted run's, a dead worker's)."""
        self.decided_indices: set[int] = set()
        """Blueprints whose deciding row is written."""
        self.recombined_parents: set[tuple[str, ...]] = set()
        """Groups of tasks whose recombination is written."""
        self.accepted: dict[str, Task] = {}
        self.kinds: Counter[bool] = Counter()
        """Accepted tasks by whether they are recombined."""
        self.targets = {False: config.n, True: round(config.recombine * config.n)}
        """Accepted tasks wanted, by whether they are recombined."""
        self.recombinations: Counter[bool] = Counter()
        """Recombinations recorded, by whether they were accepted."""
        self.rounds: list[RoundFacts] = []
        """What the statistics count of every row of the folder, as recorded."""
        self.observe = observe
        for task in read_models(paths.accepted, Task):
            self._keep(task)
        self.removed_ids = {r.task.id for r in read_models(paths.removed, RemovedRecord)}
        self.lost: list[ProposalRecord] = []
        """Rows of a killed run whose accepted or removed task it did not get to write."""
        for row in read_models(paths.proposals, ProposalRecord):  # not kept: the run's heap stays small
            self._note(Proposed(row))
            if row.kind == "proposal" and not row.final:
                self.unfinished.setdefault(row.index, []).append(row)
            accepted = row.outcome == "accepted" and row.task is not None and row.task.id not in self.accepted
            if accepted or (row.removal is not None and row.removal.task.id not in self.removed_ids):
                self.lost.append(row)
        self.dedup = Deduplicator(self.accepted.values())
        self.splits = {name: len(t) for name, t in evaluation_splits(self.domain, config).items()}
        self.waiting: deque[tuple[str, int]] = deque()
        """The items of the batch in flight, in order, until their deciding row is recorded."""
        self.decided: dict[tuple[str, int], Proposed] = {}
        """Deciding rows received, waiting for the items before them."""
        self.files: Files | None = None

    # --- bookkeeping ----------------------------------------------------------------------------

    def restore(self, accepted: JsonlAppender, removed: JsonlAppender) -> None:
        """Put back tasks that a killed run decided but did not get to write."""
        for row in self.lost:
            if row.outcome == "accepted" and row.task is not None and row.task.id not in self.accepted:
                self._accept(row.task, accepted)
            if row.removal is not None and row.removal.task.id not in self.removed_ids:
                removed.write(row.removal)
                self.removed_ids.add(row.removal.task.id)
        self.lost = []

    def _keep(self, task: Task) -> None:
        self.accepted[task.id] = task
        self.kinds[task.meta.get("source") == "recombined"] += 1

    def _note(self, row: Proposed) -> None:
        if row.kind == "recombination":
            self.recombined_parents.add(row.parents)
            self.recombinations[row.outcome == "accepted"] += 1
        elif row.kind == "proposal" and row.final:
            self.decided_indices.add(row.index)
        facts = row.facts()
        self.rounds.append(facts)
        if self.observe is not None:
            self.observe(facts)

    def _accept(
        self, task: Task, accepted: JsonlAppender, line: str | None = None, signed: str | None = None
    ) -> None:
        """Keep ``task`` (``line``, ``signed``: its JSON and signature, when already made)."""
        accepted.write(task, line)
        self._keep(task)
        if signed is None:
            self.dedup.add(task)
        else:
            self.dedup.remember(signed, task.id)

    def admit(self, row: Proposed) -> Proposed:
        """A worker's accepted blueprint, unless it repeats a task accepted since that worker started."""
        if not row.accepts:
            return row
        same = self.dedup.same_as(row.signature or "")
        if same is None:
            return row
        whole = row.record
        assert whole.task is not None
        removal = duplicate(whole.task, same)
        return Proposed(whole.model_copy(update={"outcome": "duplicate", "task": None, "removal": removal}))

    def record(self, row: Proposed) -> None:
        """Write the row first, then the task it accepts or removes (so a kill can always be repaired)."""
        assert self.files is not None
        proposals, accepted, removed = self.files
        proposals.write(row.held, row.line)
        self._note(row)
        if row.accepts:
            task = row.task
            assert task is not None
            self._accept(task, accepted, row.task_line, row.signature)
        removal = row.removal
        if removal is not None:
            removed.write(removal)
            self.removed_ids.add(removal.task.id)

    def take(self, row: Proposed, line: str | None = None) -> None:
        """A row from a worker: a round that goes on is written now, a deciding one in index order."""
        if row.kind == "proposal" and not row.final:
            self.record(row)
            self.unfinished.setdefault(row.index, []).append(row.record)
            return
        self.decided[row.key] = row
        while self.waiting and self.waiting[0] in self.decided:
            row = self.decided.pop(self.waiting.popleft())
            recombined = row.kind == "recombination"
            if self._count(recombined) >= self.targets[recombined]:
                continue  # tried ahead of need (offline): not recorded, as if never tried
            self.record(self.admit(row))

    def rebuild(self, item: Phase1Item) -> Phase1Item | None:
        """What is left of an item whose worker died: ``None`` once decided, else its next round."""
        key = _key(item)
        if key in self.decided or key not in self.waiting:
            return None
        if isinstance(item, ProposalItem):
            return ProposalItem(item.index, tuple(self.unfinished.get(item.index, ())))
        return item

    async def _play(self, pool: Pool[Phase1Item], items: Sequence[Phase1Item]) -> None:
        self.waiting.extend(_key(item) for item in items)
        await pool.run(items)

    def _count(self, recombined: bool) -> int:
        return self.kinds[recombined]

    # --- the run --------------------------------------------------------------------------------

    def job(self) -> Job[Phase1Item, Proposed]:
        """The workers' recipe: the run's config, the tasks accepted so far (by signature), few-shot
        examples when the domain has none of its own."""
        shipped = example_split(self.domain, self.config) is not None
        examples = () if shipped else tuple(self.accepted.values())
        return Job(
            partial(Phase1Worker, self.config, self.dedup.seen, examples, self.proposer),
            self.take,
            rebuild=self.rebuild,
            data_dirs=[self.config.data_dir] if self.config.data_dir is not None else [],
            concurrency=self.config.concurrency if in_parallel(self.config, self.proposer) else 1,
            max_workers=in_flight_limit(self.config),
        )

    async def run(self) -> Phase1Stats:
        started = time.perf_counter()
        bind_run(self.config, self.paths.root)
        files = self.files = (
            JsonlAppender(self.paths.proposals),
            JsonlAppender(self.paths.accepted),
            JsonlAppender(self.paths.removed),
        )
        try:
            self.restore(files[1], files[2])
            async with self.executor.pool(self.job()) as pool:
                await self._proposals(pool)
                await self._recombinations(pool)
        finally:
            for handle in files:
                handle.close()
        stats = compute_stats(self.config, self.paths, self.splits, self.rounds)
        stats.seconds = round(time.perf_counter() - started, 3)
        save_stats(self.paths, stats)
        return stats

    async def _proposals(self, pool: Pool[Phase1Item]) -> None:
        decided = set(self.decided_indices)
        limit = self.config.n * MAX_BLUEPRINTS_PER_TASK
        index = 0
        while self._count(recombined=False) < self.config.n and index < limit:
            batch: list[Phase1Item] = []
            while len(batch) < self.config.n - self._count(recombined=False) and index < limit:
                if index not in decided:
                    batch.append(ProposalItem(index, tuple(self.unfinished.get(index, ()))))
                index += 1
            await self._play(pool, batch)

    def _recombination_batch(self, need: int) -> int:
        """Recombinations to try for ``need`` more accepted ones: ``need`` when they cost model calls,
        else :data:`SPECULATION` times as many as the acceptance rate so far says are needed."""
        if in_parallel(self.config, self.proposer):
            return need
        tried = sum(self.recombinations.values())
        rate = self.recombinations[True] / tried if tried else 1.0
        return need if rate <= 0 else math.ceil(need * SPECULATION / rate)

    async def _recombinations(self, pool: Pool[Phase1Item]) -> None:
        target = self.targets[True]
        base = [t for t in self.accepted.values() if t.meta.get("source") != "recombined"]
        done = set(self.recombined_parents)
        groups = enumerate(candidates(base, random.Random(f"{self.config.seed}/recombine")))
        todo = (  # made as they are tried: a run tries a few of the thousands of groups
            RecombinationItem(position, tuple(group))
            for position, group in groups
            if tuple(t.id for t in group) not in done
        )
        while self._count(recombined=True) < target:
            size = self._recombination_batch(target - self._count(recombined=True))
            batch = list(itertools.islice(todo, size))
            if not batch:
                break
            await self._play(pool, batch)


def compute_stats(
    config: GenerationConfig,
    paths: RunPaths,
    splits: dict[str, int],
    rounds: Iterable[RoundFacts] | None = None,
) -> Phase1Stats:
    """The run's counts, from its files (``rounds``: its rows' facts, as recorded, else read).

    Counted in plain variables and made into the model once: a pydantic field set per row took most
    of the time, serial time at the end of Phase 1 with every worker waiting.
    """
    counts: Counter[str] = Counter()
    reached: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    rejections: dict[str, Counter[str]] = {stage: Counter() for stage in STAGES}
    recombination_rejections: Counter[str] = Counter()
    passed_in: Counter[int] = Counter()
    prompt_tokens = completion_tokens = 0
    cost = 0.0
    if rounds is None:
        rounds = (RoundFacts.of(row) for row in read_models(paths.proposals, ProposalRecord))
    for row in rounds:
        prompt_tokens += row.usage.prompt_tokens
        completion_tokens += row.usage.completion_tokens
        cost += row.cost
        counts["abstentions"] += row.abstentions
        counts["duplicates_removed"] += row.outcome == "duplicate"
        counts["contaminated_removed"] += row.outcome == "contaminated"
        if row.recombination:
            counts["recombinations_tried"] += 1
            counts["recombinations_accepted"] += row.outcome == "accepted"
            recombination_rejections.update(f"{stage}: {kind}" for stage, kind in row.failed)
            continue
        counts["proposals"] += 1
        counts["blueprints"] += row.final
        counts["exhausted"] += row.outcome == "rejected"
        for stage, ok in row.stages:
            reached[stage] += 1
            passed[stage] += ok
        for stage, kind in row.failed:
            rejections[stage][kind] += 1
        if row.passed:
            passed_in[row.round] += 1
    for task in read_models(paths.accepted, Task):
        counts["recombined" if task.meta.get("source") == "recombined" else "accepted"] += 1
    stages = {s: StageCount(reached=reached[s], passed=passed[s]) for s in STAGES if reached[s]}
    return Phase1Stats(
        domain=config.domain,
        seed=config.seed,
        target=config.n,
        decontaminated_against=splits,
        **counts,
        stages=stages,
        stage_rates={s: round(c.rate, 4) for s, c in stages.items()},
        rejections={s: dict(c.most_common()) for s, c in rejections.items() if c},
        recombination_rejections=dict(recombination_rejections.most_common()),
        feedback_rounds=dict(sorted(passed_in.items())),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=round(cost, 6),
    )


def save_stats(paths: RunPaths, stats: Phase1Stats) -> None:
    """Put the phase-1 counts under the ``phase1`` key of ``stats.json`` (other keys kept)."""
    current: dict[str, Any] = {}
    if paths.stats.is_file():
        try:
            loaded = read_json(paths.stats)
            current = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            current = {}
    write_json(paths.stats, {**current, "phase1": stats.model_dump(mode="json")})


async def run_phase1_async(
    config: GenerationConfig,
    paths: RunPaths,
    *,
    proposer: Proposer | None = None,
    executor: Executor | None = None,
    observe: RoundObserver | None = None,
) -> Phase1Stats:
    """:func:`run_phase1` for callers already inside an event loop."""
    return await Phase1Run(config, paths, proposer, executor, observe).run()


def run_phase1(
    config: GenerationConfig,
    paths: RunPaths,
    *,
    proposer: Proposer | None = None,
    executor: Executor | None = None,
    observe: RoundObserver | None = None,
) -> Phase1Stats:
    """Run (or resume) phase 1 into ``paths``: ``config.n`` accepted tasks, then recombinations.

    ``executor``: where blueprints are decided (default: this process); only this process writes.
    ``observe``: told of every row of the folder, those recorded before included (for the stats).
    """
    return asyncio.run(run_phase1_async(config, paths, proposer=proposer, executor=executor, observe=observe))
