"""The context a blueprint is proposed from: API walks, database rows, policy excerpts, persona, examples.

Write tools are the core of every task: a random walk on the domain's API dependency graph ends at
(or passes through) a write, sometimes two walks make a two-request task, and the policy sections
relevant to those writes, the user's rows and a few accepted tasks using the same writes go with it.
Nothing here is specific to a domain: rows are found by following ids from the user's record.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apigen_gym.core.apigraph import ApiGraph
from apigen_gym.core.database import Database
from apigen_gym.core.domain import Domain
from apigen_gym.core.task import Task, TwistKind
from apigen_gym.core.tools import ToolKind
from apigen_gym.generation.blueprint import ContextSummary
from apigen_gym.generation.personas import pick_persona

USERS = "users"
SECOND_WALK = 0.35
"""Chance that a context holds a second walk (a task with two requests)."""
FIRST_HOP_ROWS = 6
SECOND_HOP_ROWS = 4
EXAMPLES = 2
SECTIONS_PER_TOOL = 2
_SYNONYMS = {"modify": ("chang",), "update": ("chang",), "baggages": ("bag",), "certificate": ("compensat",)}
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class PolicySection:
    """One ``## `` section of a domain's policy text."""

    title: str
    text: str


@dataclass(frozen=True)
class Context:
    """Everything a proposer is shown for one blueprint."""

    domain: Domain = field(repr=False)
    user_id: str
    walks: tuple[tuple[str, ...], ...]
    write_tools: tuple[str, ...]
    rows: Mapping[str, Mapping[str, Any]] = field(repr=False)
    """Database rows by table and id (the user's record first)."""
    policy: tuple[PolicySection, ...]
    persona: str
    examples: tuple[Task, ...] = field(repr=False)
    twist: TwistKind | None = None
    """How the task must evolve mid-conversation (``None``: it need not)."""

    @property
    def read_tools(self) -> list[str]:
        return [t.name for t in self.domain.tools.of_kind(ToolKind.READ)]

    @property
    def tools(self) -> list[str]:
        """The tools a blueprint is built from, in the domain's order: where walks start (the
        identification look-ups), the walks' tools, and the reads that feed one of those."""
        walked = {tool for walk in self.walks for tool in walk}
        wanted = set(walked)
        if self.domain.api_graph is not None:
            graph = self.domain.api_graph
            reads = set(self.read_tools)
            wanted.update(graph.roots())
            wanted.update(e.source for e in graph.edges if e.target in walked and e.source in reads)
        return [t.name for t in self.domain.tools if t.name in wanted]

    def summary(self) -> ContextSummary:
        return ContextSummary(
            user_id=self.user_id,
            walk=[list(w) for w in self.walks],
            write_tools=list(self.write_tools),
            rows={table: list(rows) for table, rows in self.rows.items()},
            policy_sections=[s.title for s in self.policy],
            persona=self.persona,
            examples=[t.id for t in self.examples],
            twist=self.twist,
        )


def split_policy(text: str) -> list[PolicySection]:
    """The ``## `` sections of a policy text, in order (the preamble is left out)."""
    sections = []
    for chunk in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, body = chunk.partition("\n")
        sections.append(PolicySection(title.strip(), body.strip()))
    return sections


def _stems(tool: str) -> list[str]:
    """Word prefixes that find a tool's topic in prose: ``cancel_pending_order`` -> ``cance``, ``pendi``..."""
    stems: list[str] = []
    for word in tool.lower().split("_"):
        stems += [word[:5], *_SYNONYMS.get(word, ())]
    return list(dict.fromkeys(stems))


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class PolicyIndex:
    """Scores policy sections against tools: stems in titles count most, rare stems more than common ones."""

    def __init__(self, text: str):
        self.sections = split_policy(text)
        self._titles = [_words(s.title) for s in self.sections]
        self._bodies = [_words(s.text) for s in self.sections]
        self._texts = [s.text for s in self.sections]
        self._best: dict[tuple[str, int], tuple[int, ...]] = {}

    def _hits(self, words: list[str], stem: str) -> int:
        return sum(w.startswith(stem) for w in words)

    def score(self, index: int, tool: str) -> float:
        total = 10.0 if f"`{tool}`" in self._texts[index] else 0.0
        for stem in _stems(tool):
            spread = sum(bool(self._hits(t + b, stem)) for t, b in zip(self._titles, self._bodies))
            if not spread:
                continue
            weight = math.log((1 + len(self.sections)) / spread)
            title = self._hits(self._titles[index], stem)
            total += weight * (3 * title + min(self._hits(self._bodies[index], stem), 3))
        return total

    def best(self, tool: str, per_tool: int = SECTIONS_PER_TOOL) -> tuple[int, ...]:
        """Indices of the ``per_tool`` best-scoring sections for ``tool`` (cached)."""
        key = (tool, per_tool)
        if key not in self._best:
            scored = sorted(((self.score(i, tool), i) for i in range(len(self.sections))), reverse=True)
            self._best[key] = tuple(i for score, i in scored[:per_tool] if score > 0)
        return self._best[key]

    def relevant(
        self, tools: Iterable[str], per_tool: int = SECTIONS_PER_TOOL, named: Iterable[str] = ()
    ) -> tuple[PolicySection, ...]:
        """The best sections for each of ``tools``, and those naming one of ``named``, in policy order."""
        chosen = {i for tool in tools for i in self.best(tool, per_tool)}
        names = set(named)
        chosen.update(i for i, text in enumerate(self._texts) if any(f"`{n}`" in text for n in names))
        return tuple(self.sections[i] for i in sorted(chosen))


def _strings(value: Any) -> Iterable[str]:
    """Every string inside a JSON-like value (keys of mappings included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


class RowFinder:
    """The rows that belong with a user: records whose ids the user's record names, then one hop further."""

    def __init__(self, database: Database):
        self.database = database
        self._table_of: dict[str, str] = {}
        for table in database.table_names:
            if table != USERS:
                for key in database.table(table):
                    self._table_of.setdefault(key, table)

    def _named(self, record: Any, seen: set[tuple[str, str]]) -> list[tuple[str, str]]:
        found = []
        for text in _strings(record):
            table = self._table_of.get(text)
            if table is not None and (table, text) not in seen:
                seen.add((table, text))
                found.append((table, text))
        return found

    def rows(self, user_id: str, rng: random.Random) -> dict[str, dict[str, Any]]:
        """The user's record and up to a few related rows per hop: the base's read-only records (not
        copied: only an LLM proposer's prompt serialises them)."""
        user = self.database.table(USERS).get(user_id)
        out: dict[str, dict[str, Any]] = {USERS: {user_id: user}}
        seen: set[tuple[str, str]] = set()
        first = self._named(user, seen)
        first = sorted(rng.sample(first, FIRST_HOP_ROWS)) if len(first) > FIRST_HOP_ROWS else first
        second: list[tuple[str, str]] = []
        for table, key in first:
            out.setdefault(table, {})[key] = self.database.table(table)[key]
            second += self._named(self.database.table(table)[key], seen)
        if len(second) > SECOND_HOP_ROWS:
            second = sorted(rng.sample(second, SECOND_HOP_ROWS))
        for table, key in second:
            out.setdefault(table, {})[key] = self.database.table(table)[key]
        return out


def sample_walks(graph: ApiGraph, writes: Sequence[str], rng: random.Random, tries: int = 8) -> list[str]:
    """A random walk from a root of ``graph`` that reaches a write tool (a shortest path as a fallback)."""
    roots = graph.roots()
    for _ in range(tries):
        path = graph.walk(rng, rng.choice(roots))
        last = max((i for i, tool in enumerate(path) if tool in writes), default=None)
        if last is not None:
            return path[: last + 1]
    pairs = []
    for root in roots:
        for write in writes:
            try:
                pairs.append([root, *(e.target for e in graph.path(root, write))])
            except ValueError:
                continue
    if not pairs:
        raise ValueError("no write tool is reachable in the API graph")
    return rng.choice(sorted(pairs))


class ExamplePool:
    """Few-shot tasks, found by the write tools they use."""

    def __init__(self, tasks: Sequence[Task], writes: Sequence[str]):
        self.tasks = list(tasks)
        self._by_tool: dict[str, list[int]] = {}
        for index, task in enumerate(self.tasks):
            for name in {a.name for a in task.actions if a.name in writes}:
                self._by_tool.setdefault(name, []).append(index)

    def pick(self, tools: Sequence[str], rng: random.Random, k: int = EXAMPLES) -> tuple[Task, ...]:
        """Up to ``k`` tasks, those using one of ``tools`` first."""
        if not self.tasks:
            return ()
        preferred = sorted({i for tool in tools for i in self._by_tool.get(tool, ())})
        chosen = rng.sample(preferred, min(k, len(preferred)))
        while len(chosen) < min(k, len(self.tasks)):
            index = rng.randrange(len(self.tasks))
            if index not in chosen:
                chosen.append(index)
        return tuple(self.tasks[i] for i in chosen)


class ContextSampler:
    """Samples contexts for one domain and database."""

    def __init__(self, domain: Domain, database: Database, examples: Sequence[Task] = ()):
        if domain.api_graph is None:
            raise ValueError(f"domain {domain.name} has no API graph")
        self.domain = domain
        self.graph = domain.api_graph
        self.writes = [t.name for t in domain.tools.of_kind(ToolKind.WRITE)]
        self.policy = PolicyIndex(domain.policy.text)
        self.finder = RowFinder(database)
        self.examples = ExamplePool(examples, self.writes)

    def sample(self, rng: random.Random, user_id: str, twist: TwistKind | None = None) -> Context:
        """A context for ``user_id``: one or two walks to writes, rows, policy, persona, examples (and
        the ``twist`` the task must have, if any)."""
        walks = [sample_walks(self.graph, self.writes, rng)]
        if rng.random() < SECOND_WALK:
            walks.append(sample_walks(self.graph, self.writes, rng))
        writes = tuple(dict.fromkeys(t for w in walks for t in w if t in self.writes))
        return Context(
            domain=self.domain,
            user_id=user_id,
            walks=tuple(tuple(w) for w in walks),
            write_tools=writes,
            rows=self.finder.rows(user_id, rng),
            policy=self.policy.relevant(writes, named=[t for w in walks for t in w]),
            persona=pick_persona(rng),
            examples=self.examples.pick(writes, rng),
            twist=twist,
        )
