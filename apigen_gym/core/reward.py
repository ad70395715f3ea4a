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
from typing import Any, Literal

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

    units: int = Field(description="fields the gold replay writes (a deleted record: one) plus required outputs")
    reached: int = Field(description="gold-written fields holding the gold value, plus outputs said")
    extra_writes: int = Field(description="fields (or whole records) changed where the gold replay changed none")
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
        None, description="records the gold replay changes (with no output either, doing nothing solves the task)"
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


def _field(record: Mapping[str, Any] | None, name: str) -> Any:
    return record.get(name, _ABSENT) if record is not None else _ABSENT


def _changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """Top-level fields whose value differs between two versions of a record (``None``: no record)."""
    names = dict.fromkeys([*(before or ()), *(after or ())])
    return [n for n in names if _field(before, n) != _field(after, n)]


def state_credit(diff: Diff, gold: Diff, base: Database) -> tuple[int, int, int]:
    """``(units, reached, extra_writes)`` of the final state against the gold one, O(records touched).

    A unit is a field the gold replay writes (its value must end as gold's), or a record gold deletes.
    An extra write is a field the agent changed where gold kept the base value; a record the agent
    creates or deletes where gold kept it as it was counts once.
    """
    units = reached = extra = 0
    for table in set(diff) | set(gold):
        mine, theirs = diff.get(table, {}), gold.get(table, {})
        for key in set(mine) | set(theirs):
            before = base.table(table).get(key)
            want = theirs[key] if key in theirs else before
            have = mine[key] if key in mine else before
            if want is None and before is not None:  # gold deletes the record
                units += 1
                reached += have is None
                continue
            for name in _changed_fields(before, want):
                units += 1
                reached += _field(have, name) == _field(want, name)
            if key not in mine:
                continue
            if (have is None) != (before is None) and want == before:  # a record created or deleted
                extra += 1
            elif have is not None and before is not None:
                extra += sum(_field(want, n) == _field(before, n) for n in _changed_fields(before, have))
    return units, reached, extra


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
) -> RewardInfo:
    """The reward under ``reward_mode``, minus an optional penalty per violation.

    ``binary``: 1 iff states match and all outputs are found. ``partial`` needs the ``base`` state the
    diffs were taken from.
    """
    differing = differing_records(diff, gold)
    checks = [OutputCheck(output=o, found=output_found(o, assistant_messages, mode)) for o in outputs]
    partial = None
    if reward_mode == "partial":
        if base is None:
            raise ValueError("the partial reward needs the base state the diffs were taken from")
        units, reached, extra = state_credit(diff, gold, base)
        partial = PartialCredit(
            units=units + len(checks),
            reached=reached + sum(c.found for c in checks),
            extra_writes=extra,
            violations=len(violations),
        )
        total = partial.units or 1  # nothing to do: leaving things as they are is the one unit
        reached_all = partial.reached if partial.units else 1
        reward = max(0.0, (reached_all - extra - len(violations)) / total)
    elif reward_mode == "binary":
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


class GoldCache:
    """Gold final diffs, computed once per (database, task) by replaying the task's gold actions."""

    def __init__(self) -> None:
        self._by_db: weakref.WeakKeyDictionary[Database, dict[int, tuple[Task, Diff]]] = (
            weakref.WeakKeyDictionary()
        )

    def diff(self, tools: ToolSet, database: Database, task: Task) -> Diff:
        per_db = self._by_db.setdefault(database, {})
        entry = per_db.get(id(task))
        if entry is None or entry[0] is not task:  # the entry keeps the task alive, so ids stay unique
            entry = per_db[id(task)] = (task, replay(tools, database, task.actions).diff())
        return entry[1]

    def clear(self) -> None:
        self._by_db.clear()


GOLD = GoldCache()
"""The process-wide cache of gold diffs."""
