"""An agent made of any policy function: ``policy(messages, tools) -> action``, sync or async.

The function sees the env's whole conversation in OpenAI chat format and its tool schemas, and returns
any action the env accepts (an assistant message, a JSON tool call, text for the user). This is how a
trainer's own model (a local generate loop, an inference server client) plays an episode.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from apigen_gym.core.task import Task
from apigen_gym.players.agent import Agent
from apigen_gym.util.aio import run_sync

if TYPE_CHECKING:
    from apigen_gym.core.env import ApigenEnv

Policy = Callable[[list[dict[str, Any]], list[dict[str, Any]]], Any | Awaitable[Any]]
"""``policy(messages, tools)``: the next action, or an awaitable of it."""


class PolicyAgent(Agent):
    """Calls ``policy(env.messages, env.tools)`` once per turn."""

    def __init__(self, policy: Policy, name: str | None = None):
        self.policy = policy
        self.name = name or str(getattr(policy, "__name__", type(policy).__name__))
        self.env: ApigenEnv | None = None

    def reset(self, info: dict[str, Any], task: Task | None = None, env: ApigenEnv | None = None) -> None:
        if env is None:
            raise ValueError("a policy agent reads the conversation from the env: pass env to reset")
        self.env = env

    async def act_async(self, observation: str) -> Any:
        if self.env is None:
            raise RuntimeError("reset the agent before acting")
        action = self.policy(list(self.env.messages), self.env.tools)
        return await action if inspect.isawaitable(action) else action

    def act(self, observation: str) -> Any:
        return run_sync(self.act_async(observation))
