"""The policy engine: executable rules over a trace of tool calls and the dialogue around them.

A rule is a plain function ``check(trace) -> iterable of Violation``. The same rules validate gold
actions of generated tasks (a trace with no dialogue: rules that need one are skipped), annotate
evaluation episodes, and have their own unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from apigen_gym.core.database import StateView
from apigen_gym.core.tools import ERROR_PREFIX


class Violation(BaseModel):
    """A broken rule: which rule, at which tool step (``None`` for the whole episode), and why."""

    rule: str
    step: int | None
    message: str


@dataclass(slots=True)
class Step:
    """One executed tool call with the state just before and just after it."""

    index: int
    name: str
    arguments: dict[str, Any]
    output: str
    before: StateView
    after: StateView
    message_index: int = -1
    """Position of the assistant message that made the call, in :attr:`Trace.messages` (-1: none)."""

    @property
    def ok(self) -> bool:
        return not self.output.startswith(ERROR_PREFIX)

    def arg(self, name: str, default: Any = None) -> Any:
        return self.arguments.get(name, default)


@dataclass
class Trace:
    """Tool steps in order, plus the conversation in OpenAI chat format when there was one."""

    steps: list[Step] = field(default_factory=list)
    messages: list[dict[str, Any]] | None = None

    @property
    def has_dialogue(self) -> bool:
        return self.messages is not None

    def calls(self, *names: str) -> Iterator[Step]:
        """Steps calling any of ``names`` (all steps when none is given)."""
        return (s for s in self.steps if not names or s.name in names)

    def messages_before(self, step: Step, role: str) -> list[str]:
        """Text of the messages of ``role`` that precede ``step``'s assistant message."""
        if self.messages is None:
            return []
        return [
            str(m.get("content") or "")
            for m in self.messages[: max(step.message_index, 0)]
            if m.get("role") == role
        ]

    def last_message_before(self, step: Step, role: str) -> str | None:
        before = self.messages_before(step, role)
        return before[-1] if before else None

    def assistant_turns(self) -> list[dict[str, Any]]:
        return [m for m in self.messages or [] if m.get("role") == "assistant"]


Finding = tuple[Step | None, str]
"""What a rule reports: the offending step (``None`` for the whole episode) and a message."""

RuleCheck = Callable[[Trace], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """A named, documented predicate over a trace."""

    id: str
    description: str
    check: RuleCheck
    needs_dialogue: bool = False

    def __call__(self, trace: Trace) -> list[Violation]:
        if self.needs_dialogue and not trace.has_dialogue:
            return []
        return [
            Violation(rule=self.id, step=None if step is None else step.index, message=message)
            for step, message in self.check(trace)
        ]


def rule(rule_id: str, *, needs_dialogue: bool = False) -> Callable[[RuleCheck], Rule]:
    """Decorator: a function yielding ``(step, message)`` findings becomes a :class:`Rule`.

    The function's docstring is the rule's description.
    """

    def wrap(fn: RuleCheck) -> Rule:
        return Rule(rule_id, " ".join((fn.__doc__ or "").split()), fn, needs_dialogue)

    return wrap


@dataclass(frozen=True)
class Policy:
    """A domain's policy: the prose the agent reads and the rules that check it."""

    text: str
    rules: Sequence[Rule]

    def check(self, trace: Trace) -> list[Violation]:
        found: list[Violation] = []
        for r in self.rules:
            found.extend(r(trace))
        found.sort(key=lambda v: (v.step if v.step is not None else 1 << 30, v.rule))
        return found

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)
