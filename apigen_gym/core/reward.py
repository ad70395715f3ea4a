"""Reward: the final state equals the gold replay's, and every required output was said.

τ-bench compatible by default: an output counts as said when, lower-cased, it is a substring of an
assistant message lower-cased with commas removed. ``strict`` mode compares numbers as numbers and
words on word boundaries, so "10" is not found in "100".
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from apigen_gym.core.database import Database, Diff
from apigen_gym.core.policy import Violation
from apigen_gym.core.session import replay
from apigen_gym.core.task import Task
from apigen_gym.core.tools import ToolSet

OutputMode = Literal["compat", "strict"]


class OutputCheck(BaseModel):
    output: str
    found: bool


class RewardInfo(BaseModel):
    """Why an episode got its reward."""

    reward: float
    state_match: bool
    differing: dict[str, list[str]] = Field(
        default_factory=dict, description="records whose final value differs from the gold one, by table"
    )
    outputs: list[OutputCheck] = Field(default_factory=list)
    violations: list[Violation] = Field(default_factory=list)
    output_mode: OutputMode = "compat"
    violation_penalty: float = 0.0

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


def score(
    diff: Diff,
    gold: Diff,
    assistant_messages: Sequence[str],
    outputs: Sequence[str],
    violations: Sequence[Violation] = (),
    mode: OutputMode = "compat",
    violation_penalty: float = 0.0,
) -> RewardInfo:
    """Reward 1 iff states match and all outputs are found, minus an optional violation penalty."""
    differing = differing_records(diff, gold)
    checks = [OutputCheck(output=o, found=output_found(o, assistant_messages, mode)) for o in outputs]
    success = not differing and all(c.found for c in checks)
    reward = float(success)
    if violation_penalty and violations:
        reward = max(0.0, reward - violation_penalty * len(violations))
    return RewardInfo(
        reward=reward,
        state_match=not differing,
        differing=differing,
        outputs=checks,
        violations=list(violations),
        output_mode=mode,
        violation_penalty=violation_penalty,
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
