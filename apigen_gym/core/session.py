"""A session: one fork of a database, a domain's tools, and the trace of every call made."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apigen_gym.core.database import Database, Diff
from apigen_gym.core.policy import Step, Trace
from apigen_gym.core.task import Action
from apigen_gym.core.tools import ToolKind, ToolResult, ToolSet


class Session:
    """Executes tool calls on a copy-on-write fork and records them, with states, in a trace."""

    def __init__(self, tools: ToolSet, database: Database, messages: list[dict[str, Any]] | None = None):
        self.tools = tools
        self.fork = database.fork()
        self.trace = Trace(messages=messages)
        self._transferred = False

    def call(self, name: str, arguments: Mapping[str, Any] | None, message_index: int = -1) -> ToolResult:
        fork = self.fork
        tool = self.tools.get(name) if isinstance(name, str) else None
        before = fork.snapshot()
        result = ToolSet.run(tool, fork, name, arguments)
        kind = None if tool is None else tool.kind
        after = fork.snapshot() if kind is ToolKind.WRITE else before
        self._transferred = kind is ToolKind.TERMINAL and result.ok
        steps = self.trace.steps
        step = Step(len(steps), result.name, result.arguments, result.output, before, after, message_index)
        steps.append(step)
        return result

    def ended_by_terminal_tool(self) -> bool:
        """Whether the last call was a terminal tool that succeeded."""
        return self._transferred

    def diff(self) -> Diff:
        return self.fork.diff()


def replay(tools: ToolSet, database: Database, actions: Iterable[Action]) -> Session:
    """Run ``actions`` in order on a fresh fork (no dialogue) and return the session."""
    session = Session(tools, database)
    for action in actions:
        session.call(action.name, action.arguments)
    return session
