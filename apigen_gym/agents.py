"""Offline agents: the oracle (plays the gold actions with a proper dialogue) and a random agent."""

from __future__ import annotations

import json
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from apigen_gym.llm import Usage
from apigen_gym.task import IDENTITY_TOOLS, Action, Task
from apigen_gym.tools import ToolKind, ToolSet
from apigen_gym.users import STOP

if TYPE_CHECKING:
    from apigen_gym.env import ApigenEnv

ASK_IDENTITY = (
    "I'd be glad to help. First I need to identify you: could you tell me your email address, "
    "or your first name and last name with your zip code or date of birth?"
)
WHAT_ELSE = "Is there anything else I can help you with?"
TRANSFER_NOTICE = (
    "I'm unable to handle this request with the tools I have, so I am transferring you to a human agent."
)


class Agent(ABC):
    """Produces one action per observation; ``reset`` is called at the start of every episode.

    Agents that call models implement :meth:`act_async` and read the conversation from the env
    they were reset with (``env.messages``, ``env.tools``).
    """

    name: str = "agent"
    usage: Usage = Usage()
    cost: float = 0.0

    def reset(self, info: dict[str, Any], task: Task | None = None, env: ApigenEnv | None = None) -> None:  # noqa: B027
        """Start an episode; ``info`` is what ``env.reset`` returned."""

    @abstractmethod
    def act(self, observation: str) -> Any:
        """The next action: a JSON tool call, a message, a dict or an OpenAI message."""

    async def act_async(self, observation: str) -> Any:
        """:meth:`act` for asynchronous runners (agents that call models override it)."""
        return self.act(observation)


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


class RandomAgent(Agent):
    """Random tool calls with random arguments, random messages, and sometimes stops: a baseline.

    Each episode draws from its own stream, seeded by the agent's seed, the task and the env's seeded
    RNG, so trials of one task differ and re-runs repeat.
    """

    name = "random"

    def __init__(self, seed: int | None = None, stop_probability: float = 0.05):
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.stop_probability = stop_probability
        self.schemas: list[dict[str, Any]] = []

    def reset(self, info: dict[str, Any], task: Task | None = None, env: ApigenEnv | None = None) -> None:
        self.schemas = list(info.get("tools", []))
        entropy = [self.seed or 0, zlib.crc32(str(info.get("task_id", "")).encode())]
        if env is not None:
            entropy.append(int(env.np_random.integers(2**32)))
        self.rng = np.random.default_rng(entropy)

    def act(self, observation: str) -> Any:
        roll = self.rng.random()
        if roll < self.stop_probability:
            return f"Goodbye. {STOP}"
        if roll < 0.5 or not self.schemas:
            words = observation.split() or ["hello"]
            return " ".join(str(w) for w in self.rng.choice(words, size=min(8, len(words))))
        schema = self.schemas[int(self.rng.integers(len(self.schemas)))]["function"]
        props = schema["parameters"].get("properties", {})
        return json.dumps(
            {"name": schema["name"], "arguments": {k: self._value(v) for k, v in props.items()}}
        )

    def _value(self, prop: dict[str, Any]) -> Any:
        if "enum" in prop:
            return str(self.rng.choice(prop["enum"]))
        if prop.get("type") == "array":
            return [self._value(prop.get("items", {})) for _ in range(int(self.rng.integers(1, 3)))]
        if prop.get("type") in ("number", "integer"):
            return int(self.rng.integers(0, 1000))
        return str(int(self.rng.integers(10**9, 10**10)))
