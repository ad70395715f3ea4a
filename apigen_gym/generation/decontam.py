"""Deduplication and decontamination of generated tasks.

Two generated tasks are duplicates when they have the same user, gold actions and outputs. A
generated task is contaminated when it shares its user, a written record (an order, reservation or
trip id in a write's arguments) and a write tool with a task of an evaluation split, or equals one.
Writes that name no such record (a new booking, a profile change) overlap only through equality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from apigen_gym.core.domain import Domain
from apigen_gym.core.task import Task
from apigen_gym.generation.validators import write_names, written_records
from apigen_gym.kit.sampling import signature


@dataclass(frozen=True)
class Footprint:
    """What a task writes: its user, the record ids its writes name and the write tools it calls."""

    user_id: str
    records: frozenset[str]
    tools: frozenset[str]


def footprint(domain: Domain, task: Task) -> Footprint:
    writes = [a for a in task.actions if a.name in write_names(domain)]
    records = frozenset(r for a in writes for r in written_records(a, or_user=False))
    return Footprint(task.user_id or "", records, frozenset(a.name for a in writes))


@dataclass(frozen=True)
class Overlap:
    """An evaluation task a generated task overlaps, and how."""

    split: str
    task_id: str
    detail: str


class Deduplicator:
    """Remembers accepted tasks by signature (user, gold actions, outputs)."""

    def __init__(self, tasks: Iterable[Task] = ()):
        self._seen: dict[str, str] = {}
        for task in tasks:
            self.add(task)

    @classmethod
    def of(cls, seen: Mapping[str, str]) -> Deduplicator:
        """A deduplicator that remembers what another one had :attr:`seen`."""
        made = cls()
        made._seen = dict(seen)
        return made

    @property
    def seen(self) -> dict[str, str]:
        """The accepted tasks' ids by signature (compact: what a worker needs to know of them)."""
        return dict(self._seen)

    def duplicate_of(self, task: Task) -> str | None:
        """The id of an accepted task equal to ``task``, if any."""
        return self.same_as(signature(task))

    def same_as(self, signed: str) -> str | None:
        """The id of an accepted task whose signature is ``signed``, if any."""
        return self._seen.get(signed)

    def add(self, task: Task) -> None:
        self.remember(signature(task), task.id)

    def remember(self, signed: str, task_id: str) -> None:
        """Remember the task ``task_id``, whose signature is ``signed`` (already made)."""
        self._seen.setdefault(signed, task_id)


class Decontaminator:
    """Finds overlaps with the tasks of evaluation splits."""

    def __init__(self, domain: Domain, splits: Mapping[str, Sequence[Task]]):
        self.domain = domain
        self.sizes = {name: len(tasks) for name, tasks in splits.items()}
        self._by_user: dict[str, list[tuple[str, Task, Footprint]]] = {}
        self._signatures: dict[str, tuple[str, str]] = {}
        for name, tasks in splits.items():
            for task in tasks:
                print_ = footprint(domain, task)
                self._by_user.setdefault(print_.user_id, []).append((name, task, print_))
                self._signatures.setdefault(signature(task), (name, task.id))

    def overlap(self, task: Task) -> Overlap | None:
        """The first evaluation task ``task`` overlaps, or ``None``."""
        same = self._signatures.get(signature(task))
        if same is not None:
            return Overlap(same[0], same[1], f"same user, gold actions and outputs as {same[1]}")
        mine = footprint(self.domain, task)
        for split, other, theirs in self._by_user.get(mine.user_id, []):
            records, tools = mine.records & theirs.records, mine.tools & theirs.tools
            if records and tools:
                return Overlap(
                    split,
                    other.id,
                    f"shares user {mine.user_id}, records {sorted(records)} and write tools {sorted(tools)} "
                    f"with {other.id}",
                )
        return None
