"""A session: one fork of a database, a domain's tools, and the trace of every call made."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apigen_gym.core.database import Database, Diff
from apigen_gym.core.policy import Step, Trace
from apigen_gym.core.task import Action
from apigen_gym.core.tools import ToolKind, ToolSet, own_arguments, unknown_tool

_WRITE, _TERMINAL = ToolKind.WRITE, ToolKind.TERMINAL
"""Read once: reading an enum member off its class costs as much as copying the arguments, each call."""


class Session:
    """Executes tool calls on a copy-on-write fork and records them, with states, in a trace."""

    def __init__(self, tools: ToolSet, database: Database, messages: list[dict[str, Any]] | None = None):
        self.tools = tools
        self.fork = database.fork()
        self.trace = Trace(messages=messages)
        self.transferred = False
        """Whether the last call was a terminal tool that succeeded (the conversation was handed over)."""

    def call(self, name: str, arguments: Mapping[str, Any] | None, message_index: int = -1) -> Step:
        """Run one call on the fork and record it; the recorded step (its ``output``, ``ok``)."""
        fork = self.fork
        tool = self.tools.get(name) if isinstance(name, str) else None
        if type(arguments) is dict:
            args = given = dict(arguments)
        else:
            args, given = own_arguments(arguments)
        before = fork.snapshot()
        if tool is None:
            output, after, kind = unknown_tool(name), before, None
        else:
            kind = tool.kind
            output = tool.apply(fork, given)
            after = fork.snapshot() if kind is _WRITE else before
        steps = self.trace.steps
        step = Step(len(steps), str(name), args, output, before, after, message_index)
        steps.append(step)
        self.transferred = kind is _TERMINAL and step.ok
        return step

    def ended_by_terminal_tool(self) -> bool:
        """Whether the last call was a terminal tool that succeeded."""
        return self.transferred

    def diff(self) -> Diff:
        return self.fork.diff()


def replay(tools: ToolSet, database: Database, actions: Iterable[Action]) -> Session:
    """Run ``actions`` in order on a fresh fork (no dialogue) and return the session."""
    session = Session(tools, database)
    for action in actions:
        session.call(action.name, action.arguments)
    return session
