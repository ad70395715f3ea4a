"""A Phase 1 row as the run's driver takes it, and what the statistics count of it.

A row of ``proposals.jsonl`` (7-8 KiB: the context, the blueprint, every verdict, the accepted task)
is made where its blueprint is decided: a Ray worker, or the driver's own process. The driver needs
only a few of its fields to admit it, its JSON line to append it, the accepted task's line and
signature, and the facts the statistics add up. Those are taken where the row is made, so that the
driver does not read every row again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from apigen_gym.core.task import Task
from apigen_gym.generation.blueprint import ProposalRecord, RemovedRecord, decides
from apigen_gym.kit.sampling import signature
from apigen_gym.llm.types import Usage
from apigen_gym.util.jsonio import RecordLine, model_from_json


@dataclass(frozen=True, slots=True)
class RoundFacts:
    """What the statistics count of one ``proposals.jsonl`` row."""

    recombination: bool
    outcome: str | None
    """``None`` for a row of another layout that does not say (then ``accepted`` does)."""
    stages: tuple[tuple[str, bool], ...]
    """Each verdict as (stage, passed)."""
    usage: Usage
    cost: float
    accepted: bool
    round: int = 1
    failed: tuple[tuple[str, str], ...] = ()
    """The (stage, reason kind) pairs of the failed verdicts, each once."""
    abstentions: int = 0
    """Judge calls that failed or answered unreadably."""

    @classmethod
    def of(cls, row: ProposalRecord) -> RoundFacts:
        return cls(
            recombination=row.kind == "recombination",
            outcome=row.outcome,
            stages=tuple((v.stage, v.passed) for v in row.verdicts),
            usage=row.usage,
            cost=row.cost,
            accepted=row.outcome == "accepted",
            round=row.round,
            failed=tuple(
                dict.fromkeys(
                    (v.stage, r.split(":")[0]) for v in row.verdicts if not v.passed for r in v.reasons
                )
            ),
            abstentions=sum(len(v.details.get("abstained", [])) for v in row.verdicts),
        )

    @property
    def final(self) -> bool:
        """Whether the row decides its blueprint."""
        return decides(self.outcome)

    @property
    def passed(self) -> bool:
        return bool(self.stages) and all(ok for _, ok in self.stages)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its fields, given back to ``__init__``: a frozen slotted dataclass restores its
        state one field at a time, which made up more than half of the time the driver took to
        unpickle a Phase 1 row."""
        return RoundFacts, _round_fields(self)


_round_fields = attrgetter(*(f.name for f in fields(RoundFacts)))


class Proposed(RecordLine[ProposalRecord]):
    """One Phase 1 row as the driver takes it: the fields it decides on (which item, what outcome, the
    recombination's parents), the row's JSON line, written as is, the accepted task's line and
    signature (its identity for deduplication), and the facts the statistics count.

    The whole row stays in the process that made it: pickled (a Ray worker's batch to the driver), a
    ``Proposed`` carries its lines, signature and facts instead, and the driver reads the row only when
    it needs it (a duplicate to relabel, a removal to write, a round to resume from), and the accepted
    task (about half the row) only to keep it.
    """

    __slots__ = (
        "kind",
        "index",
        "outcome",
        "parents",
        "removes",
        "_task",
        "_task_line",
        "_signature",
        "_facts",
    )
    model = ProposalRecord

    def __init__(self, row: ProposalRecord):
        super().__init__(row)
        self.kind, self.index, self.outcome = row.kind, row.index, row.outcome
        self.parents = tuple(row.parents)
        self.removes = row.removal is not None
        self._task: Task | None = row.task
        self._task_line: str | None = None
        self._signature: str | None = None
        self._facts: RoundFacts | None = None

    @property
    def key(self) -> tuple[str, int]:
        """What the row decides: (``proposal``, index) or (``recombination``, position)."""
        return self.kind, self.index

    @property
    def final(self) -> bool:
        """Whether the row decides its item (no further round follows)."""
        return decides(self.outcome)

    @property
    def accepts(self) -> bool:
        """Whether the row accepts a task."""
        return self.outcome == "accepted" and (self._task is not None or self._task_line is not None)

    @property
    def task(self) -> Task | None:
        """The accepted task (read from its line in a process it was sent to)."""
        if self._task is None and self._task_line is not None:
            self._task = model_from_json(Task, self._task_line)
        return self._task

    @property
    def task_line(self) -> str | None:
        """The accepted task's JSON, as written to ``accepted.jsonl``."""
        if self._task_line is None and self._task is not None:
            self._task_line = self._task.model_dump_json()
        return self._task_line

    @property
    def signature(self) -> str | None:
        """The accepted task's :func:`~apigen_gym.kit.sampling.signature`."""
        if self._signature is None:
            task = self.task
            self._signature = None if task is None else signature(task)
        return self._signature

    @property
    def removal(self) -> RemovedRecord | None:
        """The task the row removes, and why."""
        return self.record.removal if self.removes else None

    def facts(self) -> RoundFacts:
        if self._facts is None:
            self._facts = RoundFacts.of(self.record)
        return self._facts

    def __getstate__(self) -> tuple[Any, ...]:
        return (
            self.kind,
            self.index,
            self.outcome,
            self.parents,
            self.removes,
            self.line,
            self.task_line,
            self.signature,
            self.facts(),
        )

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (
            self.kind,
            self.index,
            self.outcome,
            self.parents,
            self.removes,
            self._line,
            self._task_line,
            self._signature,
            self._facts,
        ) = state
        self._record = self._task = None
