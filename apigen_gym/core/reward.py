"""Reward: the final state equals the gold replay's, and every required output was said.

τ-bench compatible by default: an output counts as said when, lower-cased, it is a substring of an
assistant message lower-cased with commas removed. ``strict`` mode compares numbers as numbers and
words on word boundaries, so "10" is not found in "100".

``reward_mode="binary"`` (τ-bench, the default) gives 1 or 0. ``"partial"`` gives credit in [0, 1]
for the share of the task done, counted in units: each field the gold replay writes (a deleted record
is one unit) and each required output. The reward is ``(units reached - writes gold never made -
policy violations) / units``, floored at 0; a task with no unit (gold changes nothing, says nothing)
counts leaving things as they are as its one unit. It is 1 exactly when the binary reward is 1 and
there is no violation.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field

from apigen_gym.core.database import Database, Diff
from apigen_gym.core.policy import Violation
from apigen_gym.core.session import replay
from apigen_gym.core.task import Task
from apigen_gym.core.tools import ToolSet

OutputMode = Literal["compat", "strict"]
RewardMode = Literal["binary", "partial"]
REWARD_MODES: tuple[RewardMode, ...] = ("binary", "partial")


class OutputCheck(BaseModel):
    output: str
    found: bool


class PartialCredit(BaseModel):
    """How a ``partial`` reward was counted (see the module docstring)."""

    units: int = Field(
        description="fields the gold replay writes (a deleted record: one) plus required outputs"
    )
    reached: int = Field(description="gold-written fields holding the gold value, plus outputs said")
    extra_writes: int = Field(
        description="fields (or whole records) changed where the gold replay changed none"
    )
    violations: int


class RewardInfo(BaseModel):
    """Why an episode got its reward."""

    reward: float
    reward_mode: RewardMode = "binary"
    state_match: bool
    differing: dict[str, list[str]] = Field(
        default_factory=dict, description="records whose final value differs from the gold one, by table"
    )
    outputs: list[OutputCheck] = Field(default_factory=list)
    violations: list[Violation] = Field(default_factory=list)
    output_mode: OutputMode = "compat"
    violation_penalty: float = 0.0
    gold_changes: int | None = Field(
        None,
        description="records the gold replay changes (with no output either, doing nothing solves the task)",
    )
    partial: PartialCredit | None = None

    @property
    def outputs_ok(self) -> bool:
        return all(o.found for o in self.outputs)


_NUMBER = re.compile(r"(?<![\w.])[-+]?\$?\d[\d,]*(?:\.\d+)?(?![\w]|\.\d)")


def _as_number(text: str) -> float | None:
    cleaned = text.strip().lstrip("$").replace(",", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def output_found(output: str, messages: Sequence[str], mode: OutputMode = "compat") -> bool:
    """Whether ``output`` appears in any of the assistant ``messages`` under ``mode``."""
    needle = output.lower()
    if mode == "compat":
        return any(needle in m.lower().replace(",", "") for m in messages)
    number = _as_number(output)
    if number is not None:
        return any(
            _as_number(match.group().replace("$", "")) == number
            for m in messages
            for match in _NUMBER.finditer(m)
        )
    pattern = re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)")
    return any(pattern.search(m.lower()) for m in messages)


def differing_records(diff: Diff, gold: Diff) -> dict[str, list[str]]:
    """Keys, by table, whose final record differs between two diffs of the same base."""
    out: dict[str, list[str]] = {}
    for table in sorted(set(diff) | set(gold)):
        mine, theirs = diff.get(table, {}), gold.get(table, {})
        keys = sorted(
            k for k in set(mine) | set(theirs) if k not in mine or k not in theirs or mine[k] != theirs[k]
        )
        if keys:
            out[table] = keys
    return out


_ABSENT = object()
"""A field a record does not have (distinct from a field holding ``None``)."""

RecordKey = tuple[str, str]


def _value(record: Mapping[str, Any] | None, name: str) -> Any:
    return _ABSENT if record is None else record.get(name, _ABSENT)


def _changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """Top-level fields whose value differs between two versions of a record (``None``: no record)."""
    if before is None or after is None:
        return list(after or before or ())
    changed = [name for name, value in after.items() if before.get(name, _ABSENT) != value]
    return changed + [name for name in before if name not in after]


class GoldUnits(NamedTuple):
    """What the gold replay writes, counted for the partial reward."""

    fields: dict[RecordKey, tuple[str, ...] | None]
    """Per record gold changes: the fields it writes, or ``None`` for a record it deletes (one unit)."""
    total: int


def gold_units(gold: Diff, base: Database) -> GoldUnits:
    """The units of ``gold`` against ``base``: each field it writes, each record it deletes."""
    fields = {
        (table, key): None if record is None else tuple(_changed_fields(base.table(table).get(key), record))
        for table, records in gold.items()
        for key, record in records.items()
    }
    return GoldUnits(fields, sum(1 if names is None else len(names) for names in fields.values()))


class StateCredit(NamedTuple):
    differing: dict[str, list[str]]
    """:func:`differing_records` of the two diffs."""
    units: int
    reached: int
    extra_writes: int


def state_credit(diff: Diff, gold: Diff, base: Database, units: GoldUnits | None = None) -> StateCredit:
    """The final state's partial credit against the gold one.

    A unit is a field the gold replay writes (its value must end as gold's), or a record gold deletes.
    An extra write is a field the agent changed where gold kept the base value; a record the agent
    creates or deletes where gold kept it as it was counts once. ``units`` is :func:`gold_units` of
    ``gold`` (computed when not given).

    It is the binary reward's pass (:func:`differing_records`) plus field counting on the records that
    pass finds different: every other gold unit is reached, so on the gold state nothing is counted.
    """
    if units is None:
        units = gold_units(gold, base)
    differing = differing_records(diff, gold)
    reached, extra = units.total, 0
    for table, keys in differing.items():
        mine, theirs, base_table = diff.get(table, {}), gold.get(table, {}), base.table(table)
        for key in keys:
            gold_changed = key in theirs
            if gold_changed:  # not reached as a whole: count below what is
                fields = units.fields[(table, key)]
                reached -= 1 if fields is None else len(fields)
            if key not in mine:  # a record gold changes and the agent left as it was: nothing reached
                continue
            before: Any = base_table.get(key)
            want: Any = theirs[key] if gold_changed else before
            have = mine[key]
            if gold_changed:
                if fields is None:  # gold deletes the record
                    reached += have is None
                    continue
                reached += sum([_value(have, name) == want.get(name, _ABSENT) for name in fields])
            if (have is None) != (before is None) and want == before:  # a record created or deleted
                extra += 1
            elif have is not None and before is not None:  # (and so is want)
                changed = _changed_fields(before, have)
                extra += sum([want.get(name, _ABSENT) == before.get(name, _ABSENT) for name in changed])
    return StateCredit(differing, units.total, reached, extra)


def score(
    diff: Diff,
    gold: Diff,
    assistant_messages: Sequence[str],
    outputs: Sequence[str],
    violations: Sequence[Violation] = (),
    mode: OutputMode = "compat",
    violation_penalty: float = 0.0,
    reward_mode: RewardMode = "binary",
    base: Database | None = None,
    units: GoldUnits | None = None,
) -> RewardInfo:
    """The reward under ``reward_mode``, minus an optional penalty per violation.

    ``binary``: 1 iff states match and all outputs are found. ``partial`` needs the ``base`` state the
    diffs were taken from (and takes :func:`gold_units` of ``gold`` when they are cached).
    """
    checks = [OutputCheck(output=o, found=output_found(o, assistant_messages, mode)) for o in outputs]
    partial = None
    if reward_mode == "partial":
        if base is None:
            raise ValueError("the partial reward needs the base state the diffs were taken from")
        credit = state_credit(diff, gold, base, units)
        differing = credit.differing
        total = credit.units + len(checks)
        reached = credit.reached + sum(c.found for c in checks)
        partial = {
            "units": total,
            "reached": reached,
            "extra_writes": credit.extra_writes,
            "violations": len(violations),
        }
        if not total:  # nothing to do: leaving things as they are is the one unit
            total = reached = 1
        reward = max(0.0, (reached - credit.extra_writes - len(violations)) / total)
    elif reward_mode == "binary":
        differing = differing_records(diff, gold)
        reward = float(not differing and all(c.found for c in checks))
    else:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}, not {reward_mode!r}")
    if violation_penalty and violations:
        reward = max(0.0, reward - violation_penalty * len(violations))
    return RewardInfo(
        reward=reward,
        reward_mode=reward_mode,
        state_match=not differing,
        differing=differing,
        outputs=checks,
        violations=list(violations),
        output_mode=mode,
        violation_penalty=violation_penalty,
        gold_changes=sum(len(records) for records in gold.values()),
        partial=partial,
    )


class GoldEntry:
    """One task's gold final diff on one database, and its partial-reward units once asked for."""

    __slots__ = ("task", "diff", "_units")

    def __init__(self, task: weakref.ref[Task], diff: Diff):
        self.task = task
        """The task, weakly: an entry lives as long as its task does."""
        self.diff = diff
        self._units: GoldUnits | None = None

    def units(self, base: Database) -> GoldUnits:
        """:func:`gold_units` of the diff against ``base`` (the database it came from), computed once."""
        if self._units is None:
            self._units = gold_units(self.diff, base)
        return self._units


class GoldCache:
    """Gold final diffs, computed once per (database, task) by replaying the task's gold actions.

    An entry goes when its task does (or its database): a process that plays task after new task
    (generation runs one after another, a Ray worker that outlives its jobs) does not keep every task
    it ever scored, nor walk them all in each full garbage collection.
    """

    def __init__(self) -> None:
        self._by_db: weakref.WeakKeyDictionary[Database, dict[int, GoldEntry]] = weakref.WeakKeyDictionary()

    def entry(self, tools: ToolSet, database: Database, task: Task) -> GoldEntry:
        per_db = self._by_db.setdefault(database, {})
        key = id(task)
        entry = per_db.get(key)
        if entry is None or entry.task() is not task:

            def forget(dead: weakref.ref[Task]) -> None:
                found = per_db.get(key)
                if found is not None and found.task is dead:
                    del per_db[key]

            diff = replay(tools, database, task.actions).diff()
            entry = per_db[key] = GoldEntry(weakref.ref(task, forget), diff)
        return entry

    def diff(self, tools: ToolSet, database: Database, task: Task) -> Diff:
        return self.entry(tools, database, task).diff

    def clear(self) -> None:
        self._by_db.clear()


GOLD = GoldCache()
"""The process-wide cache of gold diffs."""
