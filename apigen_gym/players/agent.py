"""What every agent implements: one action per observation, reset at the start of each episode."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from apigen_gym.core.task import Task
from apigen_gym.llm.types import Usage

if TYPE_CHECKING:
    from apigen_gym.core.env import ApigenEnv


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
