"""Offline agents: the oracle (plays the gold actions with a proper dialogue) and a random agent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apigen_gym.core.task import IDENTITY_TOOLS, Action, Task
from apigen_gym.core.tools import ToolKind, ToolSet
from apigen_gym.core.user import STOP
from apigen_gym.players.agent import Agent

if TYPE_CHECKING:
    from apigen_gym.core.env import ApigenEnv

ASK_IDENTITY = (
    "I'd be glad to help. First I need to identify you: could you tell me your email address, "
    "or your first name and last name with your zip code or date of birth?"
)
WHAT_ELSE = "Is there anything else I can help you with?"
TRANSFER_NOTICE = (
    "I'm unable to handle this request with the tools I have, so I am transferring you to a human agent."
)


def describe(action: Action) -> str:
    """A readable one-line description of a tool call, for confirmations."""
    args = ", ".join(f"{k} = {json.dumps(v)}" for k, v in action.arguments.items())
    return f"{action.name.replace('_', ' ')} ({args})"


def call(action: Action) -> str:
    return json.dumps({"name": action.name, "arguments": action.arguments})


@dataclass(frozen=True)
class Say:
    text: str


def plan_oracle_moves(task: Task, tools: ToolSet) -> list[Say | Action]:
    """The oracle's script: identify, then per request read, confirm and write, refuse, report."""
    goal = task.effective_goal()
    moves: list[Say | Action] = []
    played: set[int] = set()
    if task.actions and task.actions[0].name in IDENTITY_TOOLS:
        moves.append(Say(ASK_IDENTITY))
        for index, action in enumerate(task.actions):
            if action.name not in IDENTITY_TOOLS:
                break
            moves.append(action)
            played.add(index)
    outputs_said = not task.outputs
    report = "Here is what you asked about: " + "; ".join(task.outputs) + "."
    for number, request in enumerate(goal.requests):
        for index in request.actions:
            if index in played:
                continue
            played.add(index)
            action = task.actions[index]
            tool = tools.get(action.name)
            kind = tool.kind if tool is not None else ToolKind.READ
            if kind is ToolKind.WRITE:
                moves.append(Say(f"I am about to {describe(action)}. Do you confirm (yes/no)?"))
            elif kind is ToolKind.TERMINAL:
                said = "" if outputs_said else f"{report} "
                moves.append(Say(f"{said}{TRANSFER_NOTICE}"))
                outputs_said = True
            moves.append(action)
        if request.refuse:
            moves.append(Say(f"I'm sorry, but I can't do that: {request.refuse}"))
        closing = WHAT_ELSE
        if number == len(goal.requests) - 1 and not outputs_said:
            closing = f"{report} {WHAT_ELSE}"
            outputs_said = True
        moves.append(Say(closing))
    return moves


class OracleAgent(Agent):
    """Plays a task's gold actions with a proper dialogue: identifies, confirms writes, reports, ends."""

    name = "oracle"

    def __init__(self, tools: ToolSet):
        self.tools = tools
        self._moves: list[Say | Action] = []

    def reset(self, info: dict[str, Any], task: Task | None = None, env: ApigenEnv | None = None) -> None:
        if task is None:
            raise ValueError("the oracle agent needs the task")
        self._moves = plan_oracle_moves(task, self.tools)
        self._moves.reverse()

    def act(self, observation: str) -> Any:
        if not self._moves:
            return f"Thank you for contacting us. Goodbye! {STOP}"
        move = self._moves.pop()
        return move.text if isinstance(move, Say) else call(move)
