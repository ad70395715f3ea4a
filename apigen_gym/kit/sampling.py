"""Task sampling shared by every domain: intents built on a live session, validated, split by user.

A domain's sampler only knows its own intents: which rows make a request valid (or forbidden), what
the user says, which gold reads and writes serve it. This module does the rest: it runs the gold
actions as they are chosen (so a later intent sees what an earlier one changed), assembles the
structured goal and the instruction, validates every task (replay without error, write count,
refusals without writes, policy rules, grounded in the API graph, verifiable twists), keeps splits
on disjoint users, numbers the tasks and writes them, reproducibly from a seed.

Evolving goals are composed here from a domain's intents: a change of mind is one write intent
dropped for another, a follow-up is an answer followed by the write it calls for (one of two, by a
limit on the answer); only late context needs the domain's own builders (:class:`Late`), because
which facts can come out late and what they change is the domain's knowledge.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from apigen_gym.core.apigraph import ApiGraph
from apigen_gym.core.database import Database, StateView
from apigen_gym.core.domain import Domain, load_domain
from apigen_gym.core.policy import Step, Trace
from apigen_gym.core.reward import differing_records
from apigen_gym.core.session import Session, replay
from apigen_gym.core.task import TWIST_KINDS, Action, Goal, Request, Task, Twist, TwistKind
from apigen_gym.core.tools import ERROR_PREFIX, ToolKind
from apigen_gym.kit.evolving import (
    CHANGE_LEADS,
    follow_up_words,
    limit_for,
    limit_text,
    moment_words,
    number_of,
    said_in,
    twist_problems,
)
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

Need = Literal["write", "refuse", "change_of_mind", "late_context", "follow_up"] | None
"""What a planned intent must be: a write, a refusal, anything, or a request that evolves (a twist kind)."""


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
    says: str = ""
    """Words the user opens the first request with (e.g. their user id), if any."""


@dataclass(frozen=True)
class Late:
    """Late context, as a domain builds it: the request as first made, the request once a fact the
    user had not mentioned is out, what the user says then and what the instruction tells them."""

    first: Intent
    final: Intent
    said: str
    """The user's words at the moment (first person), revealing the fact and what it changes."""
    meant: str
    """The instruction's words for it, after "When the agent asks you to confirm it," (second person)."""


LateBuilder = Callable[[Any], "Late | None"]
"""A domain's builder of late context on a task under construction (its own :class:`TaskBuilder`)."""
Drawn = tuple[Intent, Request]
"""A request of a task under construction: the intent the instruction describes, and the goal's request."""

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
    steer: tuple[str, ...] = ()
    """Write tools the task should use (see :func:`steering`); cleared once an intent writes."""

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
        builder = cls(domain, rng, Session(domain.tools, database), user_id, subject_key)
        builder.steer = _STEER.get()
        return builder

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
        conditions = (part for i in intents if i.condition for part in i.condition.split("\n"))
        sentences += list(dict.fromkeys(conditions))
        sentences.append(self.rng.choice(PERSONAS))
        return " ".join(sentences)

    def build(
        self,
        identity: Identity | None,
        plan: Sequence[Need],
        draw: Callable[[Need], Intent | None],
        late: Sequence[LateBuilder] = (),
    ) -> Task | None:
        """A task from intents drawn for ``plan``, each executed as it comes; None when one fails.

        With an ``identity``, its look-up must already have been played (see :meth:`identify`) and it
        belongs to the first request; without one the user is known from the start. A twist kind in the
        plan makes an evolving request (``late``: the domain's builders of late context).
        """
        intents: list[Intent] = []
        requests: list[Request] = []
        self.planned = len(plan)
        for number, need in enumerate(plan):
            self.drawn = number + 1
            drawn = self.evolve(need, draw, late) if need in TWIST_KINDS else self.plain(need, draw)
            if drawn is None:
                return None
            intent, request = drawn
            if number == 0 and identity is not None:
                text = f"{identity.says} {request.text}" if identity.says else request.text
                request = request.model_copy(update={"text": text, "actions": [0, *request.actions]})
            intents.append(intent)
            requests.append(request)
        meta: dict[str, Any] = {
            "intents": [i.kind for i in intents],
            "writes": sum(len(i.writes) for i in intents),
        }
        twists = [r.twist.kind for r in requests if r.twist is not None]
        if twists:
            meta["twists"] = twists
        return Task(
            id="",
            user_id=self.user_id,
            instruction=self.instruction(identity.who if identity else "", intents).strip(),
            goal=Goal(known=identity.known if identity else {}, requests=requests),
            actions=list(self.actions),
            outputs=[o for i in intents for o in i.outputs],
            meta=meta,
        )

    def plain(self, need: Need, draw: Callable[[Need], Intent | None]) -> Drawn | None:
        """A request that does not evolve: drawn, executed, recorded."""
        intent = draw(need)
        indices = None if intent is None else self.execute((*intent.reads, *intent.writes))
        if intent is None or indices is None:
            return None
        self.record(intent)
        return intent, Request(text=intent.request, actions=indices, refuse=intent.refuse)

    # --- evolving requests ----------------------------------------------------------------------

    def evolve(
        self, kind: Need, draw: Callable[[Need], Intent | None], late: Sequence[LateBuilder]
    ) -> Drawn | None:
        """A request that evolves: a change of mind, late context or a follow-up on an answer."""
        if kind == "change_of_mind":
            return self._change_of_mind(draw)
        if kind == "late_context":
            return self._late_context(late)
        if kind == "follow_up":
            return self._follow_up(draw)
        raise ValueError(f"not a twist kind: {kind!r}")

    def consequential(self, abandoned: Sequence[Action], writes: Sequence[Action]) -> bool:
        """Whether making ``abandoned`` first runs and leaves another state than ``writes`` alone."""
        fork = self.session.fork
        start = fork.snapshot()
        ran = all(not self._run(fork, a).startswith(ERROR_PREFIX) for a in abandoned)
        for action in writes:
            self._run(fork, action)
        both = fork.diff()
        fork.restore(start)
        for action in writes:
            self._run(fork, action)
        alone = fork.diff()
        fork.restore(start)
        return ran and bool(differing_records(both, alone))

    def _run(self, fork: Any, action: Action) -> str:
        return self.domain.tools.execute(fork, action.name, action.arguments).output

    def said_so_far(self, cue: str) -> bool:
        """Whether ``cue`` is in the output of a gold action played so far (so an agent can say it)."""
        return said_in(cue, [s.output for s in self.session.trace.steps])

    def _write_about(
        self,
        draw: Callable[[Need], Intent | None],
        subject: str,
        other_than: Intent | None = None,
        tries: int = 4,
    ) -> Intent | None:
        """A write intent (other than ``other_than``), preferably about ``subject``."""
        found = None
        for _ in range(tries):
            intent = draw("write")
            if intent is None or not intent.writes or (other_than and intent.writes == other_than.writes):
                continue
            found = found or intent
            if intent.subject == subject:
                return intent
        return found

    def _twisted(
        self,
        first: Intent,
        final: Intent,
        twist: Twist,
        meant: str,
        outputs: Sequence[str],
        first_part: Sequence[int],
    ) -> Drawn:
        """The instruction's intent and the goal's request of an evolving request."""
        writes = tuple(
            self.actions[i] for i in (*first_part, *twist.actions) if self.is_write(self.actions[i])
        )
        conditions = dict.fromkeys(c for c in (first.condition, final.condition) if c)
        intent = replace(
            final,
            kind=final.kind,
            goal=f"{first.goal}. {meant}",
            writes=writes,
            outputs=tuple(outputs),
            condition="\n".join(conditions) or None,  # one per line: the instruction says each once
        )
        return intent, Request(text=first.request, actions=list(first_part), twist=twist)

    def _change_of_mind(self, draw: Callable[[Need], Intent | None]) -> Drawn | None:
        first = draw("write")
        before = None if first is None else self.execute(first.reads)
        final = None if first is None else self._write_about(draw, first.subject, first)
        if first is None or before is None or final is None:
            return None
        if not self.consequential(first.writes, final.writes):
            return None
        cues = [o for o in first.outputs if self.said_so_far(o)]
        when, cue = ("mention", cues[-1]) if cues and self.rng.random() < 0.5 else ("confirm", None)
        after = self.execute((*final.reads, *final.writes))
        if after is None:
            return None
        self.record(final)
        said = f"{self.rng.choice(CHANGE_LEADS)} {final.request}"
        twist = Twist(
            kind="change_of_mind", when=when, cue=cue, text=said, actions=after, abandoned=list(first.writes)
        )
        meant = (
            f"{moment_words(when, cue)}, you change your mind: you no longer want that, "
            f"you want to {final.goal} instead"
        )
        return self._twisted(first, final, twist, meant, [*([cue] if cue else []), *final.outputs], before)

    def _late_context(self, late: Sequence[LateBuilder], tries: int = 8) -> Drawn | None:
        piece = None
        for _ in range(tries if late else 0):
            piece = self.rng.choice(late)(self)
            if piece is not None:
                break
        if piece is None or not piece.first.writes or piece.first.writes == piece.final.writes:
            return None
        first, final = piece.first, piece.final
        before = self.execute(first.reads)
        if before is None or not self.consequential(first.writes, final.writes):
            return None
        after = self.execute((*final.reads, *final.writes))
        if after is None:
            return None
        self.record(final)
        twist = Twist(kind="late_context", text=piece.said, actions=after, abandoned=list(first.writes))
        meant = f"{moment_words('confirm', None)}, {piece.meant}"
        return self._twisted(first, final, twist, meant, final.outputs, before)

    def _follow_up(self, draw: Callable[[Need], Intent | None], tries: int = 6) -> Drawn | None:
        first = None
        for _ in range(tries):  # a question whose answer is a number (no write: the answer comes first)
            first = draw(None)
            value = number_of(first.outputs[-1]) if first is not None and first.outputs else None
            if first is not None and not first.writes and value is not None and value > 0:
                break
            first = None
        before = None if first is None else self.execute(first.reads)
        if first is None or before is None:
            return None
        cue = first.outputs[-1]
        below = self.rng.random() < 0.5
        limit = limit_for(float(cue), below, self.rng) if self.said_so_far(cue) else None
        low = None if limit is None else self._write_about(draw, first.subject)
        high = None if low is None else self._write_about(draw, first.subject, low)
        if limit is None or low is None or high is None:
            return None
        chosen, other = (low, high) if below else (high, low)
        if not self.consequential(other.writes, chosen.writes):
            return None
        after = self.execute((*chosen.reads, *chosen.writes))
        if after is None:
            return None
        self.record(first)  # only now: the answer's subject may be what the follow-up changes
        self.record(chosen)
        said = f"{follow_up_words(below, limit, self.rng)} {chosen.request}"
        bound = limit_text(limit)
        condition = f"the answer is below {bound}" if below else f"the answer is {bound} or more"
        twist = Twist(
            kind="follow_up",
            when="mention",
            cue=cue,
            text=said,
            actions=after,
            abandoned=list(other.writes),
            condition=condition,
        )
        meant = (
            f"If the answer is below {bound}, you then want to {low.goal}; otherwise you want to {high.goal}"
        )
        return self._twisted(first, chosen, twist, meant, [*first.outputs, *chosen.outputs], before)


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
    late: Sequence[Callable[[C], Late | None]] = ()
    """Builders of late context (facts the user reveals only when asked to confirm)."""

    def plan(self, rng: random.Random, twist: TwistKind | None = None) -> list[Need]:
        """What each intent of a task must be: some tasks chain two writes, some open with a refusal.

        With a ``twist``, one request evolves that way, alone or beside a free intent before or after.
        """
        if twist is not None:
            roll = rng.random()
            return [twist] if roll < 0.6 else [None, twist] if roll < 0.8 else [twist, None]
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
        one of that family's builders builds it; up to ``tries`` families before giving up.

        While the builder is steered (:attr:`TaskBuilder.steer`), the first half of the tries end at
        one of the steered write tools instead, until an intent writes.
        """
        steered = [t for t in ctx.steer if t in self.families] if need != "refuse" else []
        for attempt in range(tries):
            name = ctx.rng.choice(steered) if steered and 2 * attempt < tries else family(need)
            builder = self.builder(ctx.rng, name, need)
            intent = None if builder is None else builder(ctx)
            if satisfies(intent, need):
                if intent is not None and intent.writes:
                    ctx.steer = ()
                return intent
        return None


_STEER: ContextVar[tuple[str, ...]] = ContextVar("apigen_gym_steer", default=())


@contextmanager
def steering(write_tools: Sequence[str]) -> Iterator[None]:
    """Builders started inside draw their intents towards ``write_tools`` until one writes.

    For a caller that wants a task on given writes (the template proposer, on its context's), so
    that one build usually gives one; every task is built and checked exactly as without it.
    """
    token = _STEER.set(tuple(write_tools))
    try:
        yield
    finally:
        _STEER.reset(token)


def satisfies(intent: Intent | None, need: Need) -> bool:
    """Whether ``intent`` is what the plan asked for."""
    if intent is None:
        return False
    return need is None or bool(intent.writes if need == "write" else intent.refuse)


# --- validation ---------------------------------------------------------------------------------


def problems(domain: Domain, database: Database, task: Task) -> list[str]:
    """Why ``task`` is not a valid task of ``domain`` (empty when it is).

    The gold actions replay without error, the writes match the intents, refused requests make no
    write, no policy rule is broken, outputs are non-empty without commas, (when the domain has an
    API graph) every action is fed by an earlier one, and every twist is verifiable (see
    :func:`~apigen_gym.kit.evolving.twist_problems`).
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
    found += twist_problems(domain, database, task.effective_goal(), task.actions, session)
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
    twists: tuple[TwistKind, ...] = ()
    """Twist kinds of an evolving split: its tasks take them in turn (empty: tasks do not evolve)."""


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


class BuildTask(Protocol):
    """A domain's builder: one task for a user (id and meta completed by :func:`sample_tasks`), or None.

    Every domain's ``sampler`` module exposes one as ``build_task(database, rng, user_id, twist=None)``,
    beside ``SPLITS`` and ``sample_tasks(database, n, seed, split)``; data generation proposes with it.
    With a ``twist`` kind, one request of the task evolves that way.
    """

    def __call__(
        self, database: Database, rng: random.Random, user_id: str, twist: TwistKind | None = None
    ) -> Task | None: ...


def sample_tasks(
    domain_name: str,
    database: Database,
    n: int,
    seed: int,
    split: str,
    build: BuildTask,
    pool: Sequence[str],
    attempts_per_task: int = 50,
    twists: Sequence[TwistKind] = (),
) -> list[Task]:
    """``n`` validated, distinct tasks, the same for the same database, seed and split.

    With ``twists``, every task evolves, taking the kinds in turn (so each kind gets its share).
    """
    domain = load_domain(domain_name)
    rng = random.Random(f"{domain_name}/{split}/{seed}")
    tasks: list[Task] = []
    seen: set[str] = set()
    for _ in range(n * attempts_per_task):
        if len(tasks) == n:
            break
        user = rng.choice(pool)
        task = (
            build(database, rng, user, twists[len(tasks) % len(twists)])
            if twists
            else build(database, rng, user)
        )
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


def _twist_kinds(text: str) -> tuple[TwistKind, ...]:
    """``--twists``: 'all', 'none' or a comma-separated list of twist kinds."""
    if text == "all":
        return TWIST_KINDS
    if text == "none":
        return ()
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in TWIST_KINDS]
    if unknown or not kinds:
        wrong = unknown[0] if unknown else text
        raise argparse.ArgumentTypeError(
            f"unknown twist kind {wrong!r}: use all, none or {', '.join(TWIST_KINDS)}"
        )
    return tuple(k for k in TWIST_KINDS if k in kinds)


@dataclass(frozen=True)
class DomainSampler:
    """A domain's task sampler: its builder and shipped splits, with the sampling loop and the CLI."""

    domain: str
    splits: Mapping[str, SplitSpec]
    build: BuildTask

    def sample(
        self,
        database: Database,
        n: int,
        seed: int,
        split: str = "test",
        twists: Sequence[TwistKind] | None = None,
    ) -> list[Task]:
        """``n`` validated, distinct tasks for ``split`` (drawn from its users), reproducible.

        ``twists``: the twist kinds the tasks take in turn (default: the split's; ``()``: none).
        """
        spec = self.splits.get(split)
        kinds = (spec.twists if spec else ()) if twists is None else tuple(twists)
        return sample_tasks(
            self.domain, database, n, seed, split, self.build, user_pool(database, spec), twists=kinds
        )

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
        parser.add_argument(
            "--twists",
            type=_twist_kinds,
            help=f"evolving tasks: 'all' or some of {','.join(TWIST_KINDS)}, taken in turn "
            "(default: the split's; 'none' for plain tasks)",
        )
        args = parser.parse_args(argv)
        spec = self.splits.get(args.split, SplitSpec(n=100, seed=0, buckets=()))
        database = domain.database(args.data_dir)
        tasks = self.sample(
            database, args.n or spec.n, spec.seed if args.seed is None else args.seed, args.split, args.twists
        )
        out = args.out or domain.home / "tasks" / f"{args.split}.jsonl"
        write_jsonl(out, task_rows(tasks))
        print(f"wrote {len(tasks)} {args.split} tasks to {out}")
        return 0
