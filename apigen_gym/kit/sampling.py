"""Task sampling shared by every domain: intents built on a live session, validated, split by user.

A domain's sampler only knows its own intents: which rows make a request valid (or forbidden), what
the user says, which gold reads and writes serve it. This module does the rest: it runs the gold
actions as they are chosen (so a later intent sees what an earlier one changed), assembles the
structured goal and the instruction, validates every task (replay without error, write count,
refusals without writes, policy rules, grounded in the API graph), keeps splits on disjoint users,
numbers the tasks and writes them, reproducibly from a seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from apigen_gym.core.apigraph import ApiGraph
from apigen_gym.core.database import Database, StateView
from apigen_gym.core.domain import Domain, load_domain
from apigen_gym.core.policy import Step, Trace
from apigen_gym.core.session import Session, replay
from apigen_gym.core.task import Action, Goal, Request, Task
from apigen_gym.core.tools import ERROR_PREFIX, ToolKind
from apigen_gym.util.jsonio import write_jsonl

PERSONAS = (
    "You are polite and patient, and you keep your answers short.",
    "You are in a hurry and want this sorted out quickly.",
    "You are careful with money and like to hear amounts spelled out.",
    "You are friendly and chatty, but you stay on topic.",
    "You are a private person and share only what the agent asks for.",
    "You are direct and a little impatient.",
    "You are new to this and unsure about some of the terms.",
    "You are methodical and like to handle one thing at a time.",
    "You are cheerful and thank the agent often.",
    "You are skeptical and want the agent to explain what it is doing.",
)
"""Persona sentences closing an instruction."""
THEN = ("Then", "After that,", "Next,")
ACCEPT_REFUSAL = "If the agent says this is not possible, you accept it and do not insist."
EXACT_FIGURE = "If the agent gives you a rough figure, you ask for the exact one."

Need = Literal["write", "refuse"] | None
"""What a planned intent must be: a write, a refusal, or anything."""


# --- words --------------------------------------------------------------------------------------


def join_words(parts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def article(noun: str) -> str:
    """'a lamp', 'an oven'."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def money(amount: float) -> str:
    """An amount as a required output: '412.5', '1234', '0.75' (cents, no comma, no trailing zero).

    So that it is found in what an agent says, whether "$412.50", "412.5" or "$1,234.00".
    """
    return f"{round(amount, 2) + 0.0:.2f}".rstrip("0").rstrip(".")


def read(name: str, **arguments: Any) -> Action:
    return Action(name=name, arguments=arguments)


# --- intents and the task under construction -----------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """One request of a task: what the user says, the gold reads and writes, the outputs."""

    kind: str
    subject: str
    """What the request is about (an order, a reservation, a trip...)."""
    request: str
    """The user's own words (first person), as the scripted user says them."""
    goal: str
    """The instruction's clause for it (second person, after "You want to")."""
    reads: tuple[Action, ...]
    writes: tuple[Action, ...] = ()
    outputs: tuple[str, ...] = ()
    condition: str | None = None
    refuse: str | None = None
    attempt: Action | None = None
    """For a refusal: the forbidden call, checked to be rejected by the tool."""


def info_intent(kind: str, subject: str, ask: str, want: str, reads: tuple[Action, ...], out: str) -> Intent:
    """A request for information: the reads that find it and the figure the agent must say."""
    return Intent(
        kind=kind,
        subject=subject,
        request=ask,
        goal=want,
        reads=reads,
        outputs=(out,),
        condition=EXACT_FIGURE,
    )


@dataclass(frozen=True)
class Ref:
    """How the user points at something (an order, a reservation...), and the reads that find it."""

    name: str
    reads: tuple[Action, ...]

    @property
    def mine(self) -> str:
        return f"my {self.name}"

    @property
    def yours(self) -> str:
        return f"your {self.name}"


@dataclass(frozen=True)
class Identity:
    """How the user is identified: the gold look-up, the facts the user knows, the instruction opener."""

    action: Action
    known: dict[str, str]
    who: str


_Builder = TypeVar("_Builder", bound="TaskBuilder")


@dataclass
class TaskBuilder:
    """The state one task is built on: the user, the gold actions so far and their effects."""

    domain: Domain
    rng: random.Random
    session: Session
    user_id: str
    subject_key: str = "order_id"
    """The argument that names what a write acts on (the user id when a write has none)."""
    actions: list[Action] = field(default_factory=list)
    writes: dict[str, list[str]] = field(default_factory=dict)
    mentioned: set[str] = field(default_factory=set)
    planned: int = 0
    """Intents the task being built is planned to have (set by :meth:`build`)."""
    drawn: int = 0
    """Intents drawn so far, the one being drawn included."""

    @classmethod
    def start(
        cls: type[_Builder],
        domain: Domain,
        database: Database,
        rng: random.Random,
        user_id: str,
        subject_key: str,
    ) -> _Builder:
        """A builder on a fresh session of ``database``."""
        return cls(domain, rng, Session(domain.tools, database), user_id, subject_key)

    @property
    def view(self) -> StateView:
        """The current state, after the gold actions chosen so far."""
        return self.session.fork

    @property
    def graph(self) -> ApiGraph:
        if self.domain.api_graph is None:
            raise ValueError(f"domain {self.domain.name} has no API graph")
        return self.domain.api_graph

    @property
    def last(self) -> bool:
        """Whether the intent being drawn is the task's last one."""
        return self.drawn == self.planned

    def search(self, name: str, **arguments: Any) -> list[Any]:
        """A read's list result in the current state (no action recorded)."""
        output = self.domain.tools.execute(self.session.fork, name, arguments).output
        found = json.loads(output) if output.startswith("[") else []
        return found if isinstance(found, list) else []

    def pick(self, items: Sequence[Any]) -> Any:
        return self.rng.choice(items) if items else None

    def fresh(self, subject: str) -> bool:
        """Whether no earlier intent of this task is about ``subject``."""
        return subject not in self.mentioned and subject not in self.writes

    def may_write(self, subject: str, tool: str) -> bool:
        """Whether ``tool`` may change ``subject`` after this task's earlier writes to it."""
        earlier = self.writes.get(subject, [])
        return subject not in self.mentioned and tool not in earlier and self.graph.allows([*earlier, tool])

    def rejected(self, attempt: Action) -> bool:
        """Whether the tool rejects ``attempt`` in the current state (which is left unchanged)."""
        fork = self.session.fork
        before = fork.snapshot()
        output = self.domain.tools.execute(fork, attempt.name, attempt.arguments).output
        fork.restore(before)
        return output.startswith(ERROR_PREFIX)

    def forbidden(self, attempt: Action, said: str, rules: Sequence[str]) -> bool:
        """Whether one of the policy ``rules`` flags ``attempt`` made now, after the user said ``said``.

        For refusals the tools themselves would carry out: the policy, not the tool, forbids them.
        The state is left unchanged.
        """
        fork = self.session.fork
        before = fork.snapshot()
        output = self.domain.tools.execute(fork, attempt.name, attempt.arguments).output
        after = fork.snapshot()
        fork.restore(before)
        step = Step(0, attempt.name, dict(attempt.arguments), output, before, after, message_index=1)
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": said},
            {"role": "assistant", "content": None},
        ]
        trace = Trace(steps=[step], messages=messages)
        return any(self.domain.policy.rule(rule_id)(trace) for rule_id in rules)

    def is_write(self, action: Action) -> bool:
        tool = self.domain.tools.get(action.name)
        return tool is not None and tool.kind is ToolKind.WRITE

    def execute(self, actions: Sequence[Action]) -> list[int] | None:
        """Run the actions not already played (reads are not repeated); their indices, or None on error."""
        indices = []
        for action in actions:
            if not self.is_write(action) and action in self.actions:
                continue
            if not self.session.call(action.name, action.arguments).ok:
                return None
            indices.append(len(self.actions))
            self.actions.append(action)
        return indices

    def record(self, intent: Intent) -> None:
        for write in intent.writes:
            subject = str(write.arguments.get(self.subject_key, self.user_id))
            self.writes.setdefault(subject, []).append(write.name)
        if not intent.writes:
            self.mentioned.add(intent.subject)

    def identify(self, identity: Identity) -> bool:
        """Play the identification look-up; whether it found this builder's user."""
        if self.session.call(identity.action.name, identity.action.arguments).output != self.user_id:
            return False
        self.actions.append(identity.action)
        return True

    def instruction(self, who: str, intents: Sequence[Intent]) -> str:
        """The τ-bench-style instruction: who the user is, what they want in order, conditions, persona."""
        sentences = [who]
        for number, intent in enumerate(intents):
            lead = "You want to" if number == 0 else f"{self.rng.choice(THEN)} you want to"
            if number == len(intents) - 1 and number > 1:
                lead = "Finally, you want to"
            sentences.append(f"{lead} {intent.goal}.")
        sentences += list(dict.fromkeys(i.condition for i in intents if i.condition))
        sentences.append(self.rng.choice(PERSONAS))
        return " ".join(sentences)

    def build(
        self, identity: Identity | None, plan: Sequence[Need], draw: Callable[[Need], Intent | None]
    ) -> Task | None:
        """A task from intents drawn for ``plan``, each executed as it comes; None when one fails.

        With an ``identity``, its look-up must already have been played (see :meth:`identify`) and it
        belongs to the first request; without one the user is known from the start.
        """
        intents: list[Intent] = []
        requests: list[Request] = []
        self.planned = len(plan)
        for number, need in enumerate(plan):
            self.drawn = number + 1
            intent = draw(need)
            indices = None if intent is None else self.execute((*intent.reads, *intent.writes))
            if intent is None or indices is None:
                return None
            self.record(intent)
            intents.append(intent)
            served = [0, *indices] if number == 0 and identity is not None else indices
            requests.append(Request(text=intent.request, actions=served, refuse=intent.refuse))
        return Task(
            id="",
            user_id=self.user_id,
            instruction=self.instruction(identity.who if identity else "", intents).strip(),
            goal=Goal(known=identity.known if identity else {}, requests=requests),
            actions=list(self.actions),
            outputs=[o for i in intents for o in i.outputs],
            meta={"intents": [i.kind for i in intents], "writes": sum(len(i.writes) for i in intents)},
        )


C = TypeVar("C", bound="TaskBuilder")


@dataclass(frozen=True)
class IntentMix(Generic[C]):
    """How a domain mixes its intents: builders by the tool a walk ends at, refusals, and shares."""

    families: Mapping[str, Sequence[Callable[[C], Intent | None]]]
    """Intent builders by the tool a walk ends at."""
    refusals: Mapping[str, Sequence[Callable[[C], Intent | None]]]
    """Builders of requests the policy forbids, by the same tools."""
    refusal_share: float
    """Chance that an unconstrained intent ending where a refusal exists is a refusal."""
    multi_write_share: float
    """Share of tasks planned as two writes (and maybe one more intent)."""
    refusal_task_share: float
    """Share of tasks planned to open with a refusal."""

    def plan(self, rng: random.Random) -> list[Need]:
        """What each intent of a task must be: some tasks chain two writes, some open with a refusal."""
        roll = rng.random()
        free: list[Need] = [None]
        if roll < self.multi_write_share:
            return ["write", "write", *free * rng.choice((0, 1))]
        if roll < self.multi_write_share + self.refusal_task_share:
            return ["refuse", *free * rng.choice((0, 1))]
        return free * rng.choices((1, 2, 3), (0.45, 0.4, 0.15))[0]

    def builder(self, rng: random.Random, family: str, need: Need) -> Callable[[C], Intent | None] | None:
        """A builder for an intent ending at ``family`` that can meet ``need``."""
        refusals = self.refusals.get(family, ())
        if need == "refuse" or (need is None and refusals and rng.random() < self.refusal_share):
            return rng.choice(refusals) if refusals else None
        builders = self.families.get(family, ())
        return rng.choice(builders) if builders else None

    def draw(self, ctx: C, need: Need, family: Callable[[Need], str], tries: int) -> Intent | None:
        """An intent that meets ``need``: ``family(need)`` names where it ends (a walk's end, mostly),
        one of that family's builders builds it; up to ``tries`` families before giving up."""
        for _ in range(tries):
            builder = self.builder(ctx.rng, family(need), need)
            intent = None if builder is None else builder(ctx)
            if satisfies(intent, need):
                return intent
        return None


def satisfies(intent: Intent | None, need: Need) -> bool:
    """Whether ``intent`` is what the plan asked for."""
    if intent is None:
        return False
    return need is None or bool(intent.writes if need == "write" else intent.refuse)


# --- validation ---------------------------------------------------------------------------------


def problems(domain: Domain, database: Database, task: Task) -> list[str]:
    """Why ``task`` is not a valid task of ``domain`` (empty when it is).

    The gold actions replay without error, the writes match the intents, refused requests make no
    write, no policy rule is broken, outputs are non-empty without commas, and (when the domain has an
    API graph) every action is fed by an earlier one.
    """
    session = replay(domain.tools, database, task.actions)
    found = [f"action {s.index} ({s.name}) failed: {s.output}" for s in session.trace.steps if not s.ok]
    write_names = {t.name for t in domain.tools.of_kind(ToolKind.WRITE)}
    writes = [a for a in task.actions if a.name in write_names]
    if "writes" in task.meta and len(writes) != task.meta["writes"]:
        found.append(f"{len(writes)} writes, but the intents make {task.meta['writes']}")
    for request in task.effective_goal().requests:
        if request.refuse and any(task.actions[i].name in write_names for i in request.actions):
            found.append(f"refused request makes a write: {request.text}")
    found += [f"policy: {v.rule}: {v.message}" for v in domain.policy.check(session.trace)]
    found += [f"output {o!r} is empty or has a comma" for o in task.outputs if not o or "," in o]
    if domain.api_graph is not None:
        found += ungrounded(task.actions, domain.api_graph)
    return found


def ungrounded(actions: Sequence[Action], graph: ApiGraph) -> list[str]:
    """Actions whose tool no earlier action feeds in the API graph (roots excepted)."""
    roots = set(graph.roots())
    feeds = {(e.source, e.target) for e in graph.edges}
    out = []
    for index, action in enumerate(actions):
        earlier = {a.name for a in actions[:index]}
        if action.name not in roots and not any((s, action.name) in feeds for s in earlier):
            out.append(f"action {index} ({action.name}) is not fed by any earlier action")
    return out


# --- splits and sampling ------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSpec:
    """Default size and seed of a shipped split, and which user buckets (of ten) it draws from."""

    n: int
    seed: int
    buckets: tuple[int, ...]


def bucket(user_id: str) -> int:
    """A stable bucket 0–9 for a user: splits draw from disjoint buckets."""
    return int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % 10


def user_pool(database: Database, spec: SplitSpec | None, table: str = "users") -> list[str]:
    """The users a split draws from (all users when the split has no spec)."""
    users = sorted(database.table(table))
    return users if spec is None else [u for u in users if bucket(u) in spec.buckets]


def signature(task: Task) -> str:
    """What makes two tasks the same: user, gold actions, outputs."""
    return json.dumps([task.user_id, [a.model_dump() for a in task.actions], task.outputs], sort_keys=True)


BuildTask = Callable[[Database, random.Random, str], "Task | None"]
"""A domain's builder: one task for a user (id and meta completed by :func:`sample_tasks`), or None.

Every domain's ``sampler`` module exposes one as ``build_task(database, rng, user_id)``, beside
``SPLITS`` and ``sample_tasks(database, n, seed, split)``; data generation proposes with it.
"""


def sample_tasks(
    domain_name: str,
    database: Database,
    n: int,
    seed: int,
    split: str,
    build: BuildTask,
    pool: Sequence[str],
    attempts_per_task: int = 50,
) -> list[Task]:
    """``n`` validated, distinct tasks, the same for the same database, seed and split."""
    domain = load_domain(domain_name)
    rng = random.Random(f"{domain_name}/{split}/{seed}")
    tasks: list[Task] = []
    seen: set[str] = set()
    for _ in range(n * attempts_per_task):
        if len(tasks) == n:
            break
        task = build(database, rng, rng.choice(pool))
        if task is None or signature(task) in seen or problems(domain, database, task):
            continue
        seen.add(signature(task))
        meta = {"split": split, "source": "sampler", "seed": seed, **task.meta}
        tasks.append(task.model_copy(update={"id": f"{domain_name}-{split}-{len(tasks):03d}", "meta": meta}))
    if len(tasks) < n:
        raise RuntimeError(f"could only build {len(tasks)} of {n} {domain_name} tasks from {len(pool)} users")
    return tasks


def task_rows(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """Tasks as JSON rows (``None`` fields left out); ``Task.model_validate`` reads them back."""
    return [t.model_dump(mode="json", exclude_none=True) for t in tasks]


@dataclass(frozen=True)
class DomainSampler:
    """A domain's task sampler: its builder and shipped splits, with the sampling loop and the CLI."""

    domain: str
    splits: Mapping[str, SplitSpec]
    build: BuildTask

    def sample(self, database: Database, n: int, seed: int, split: str = "test") -> list[Task]:
        """``n`` validated, distinct tasks for ``split`` (drawn from its users), reproducible."""
        pool = user_pool(database, self.splits.get(split))
        return sample_tasks(self.domain, database, n, seed, split, self.build, pool)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The command line of ``python -m apigen_gym.domains.<domain>.sampler``."""
        domain = load_domain(self.domain)
        parser = argparse.ArgumentParser(
            prog=f"python -m apigen_gym.domains.{self.domain}.sampler",
            description=f"Sample validated {self.domain} tasks by random walks on the API graph.",
        )
        parser.add_argument("--split", default="test", help="split name (default: test)")
        parser.add_argument("--n", type=int, help="number of tasks (default: the split's shipped size)")
        parser.add_argument("--seed", type=int, help="random seed (default: the split's shipped seed)")
        parser.add_argument(
            "--out", type=Path, help=f"output JSONL (default: domains/{self.domain}/tasks/<split>.jsonl)"
        )
        parser.add_argument(
            "--data-dir", type=Path, help="a τ-bench-layout data folder (default: shipped data)"
        )
        args = parser.parse_args(argv)
        spec = self.splits.get(args.split, SplitSpec(n=100, seed=0, buckets=()))
        database = domain.database(args.data_dir)
        tasks = self.sample(
            database, args.n or spec.n, spec.seed if args.seed is None else args.seed, args.split
        )
        out = args.out or domain.home / "tasks" / f"{args.split}.jsonl"
        write_jsonl(out, task_rows(tasks))
        print(f"wrote {len(tasks)} {args.split} tasks to {out}")
        return 0
