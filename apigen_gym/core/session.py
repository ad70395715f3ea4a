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

    def call(self, name: str, arguments: Mapping[str, Any] | None, message_index: int = -1) -> ToolResult:
        before = self.fork.snapshot()
        result = self.tools.execute(self.fork, name, arguments)
        tool = self.tools.get(name)
        after = self.fork.snapshot() if tool is not None and tool.kind is ToolKind.WRITE else before
        self.trace.steps.append(
            Step(
                len(self.trace.steps),
                result.name,
                result.arguments,
                result.output,
                before,
                after,
                message_index,
            )
        )
        return result

    def ended_by_terminal_tool(self) -> bool:
        """Whether the last call was a terminal tool that succeeded."""
        if not self.trace.steps:
            return False
        last = self.trace.steps[-1]
        tool = self.tools.get(last.name)
        return tool is not None and tool.kind is ToolKind.TERMINAL and last.ok

    def diff(self) -> Diff:
        return self.fork.diff()


def replay(tools: ToolSet, database: Database, actions: Iterable[Action]) -> Session:
    """Run ``actions`` in order on a fresh fork (no dialogue) and return the session."""
    session = Session(tools, database)
    for action in actions:
        session.call(action.name, action.arguments)
    return session
