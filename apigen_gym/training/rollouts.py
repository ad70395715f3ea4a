"""Grouped rollouts: G episodes of one task with one policy, the unit GRPO-style trainers consume.

Each rollout is the evaluation runner's own episode (:func:`run_episode_async`: reset, agent turns,
the user's replies, the reward at the end) on its own env, so rollouts in flight share nothing. The
policy is a model through the LLM layer (an ``LLMClient``: one chat completion per turn with the
env's tools), a function ``policy(messages, tools) -> action`` (sync or async), or an agent factory.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from apigen_gym.core.domain import DataError
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.registration import ENV_IDS
from apigen_gym.evaluation.runner import EpisodeResult, run_episode_async
from apigen_gym.players.agent import Agent
from apigen_gym.players.model_agents import ToolCallingAgent
from apigen_gym.players.policy_agent import Policy, PolicyAgent
from apigen_gym.training.tokens import ChatTokenizer, TokenizedEpisode, tokenize_episode

if TYPE_CHECKING:
    from apigen_gym.llm.client import LLMClient

EnvSource = str | Callable[[], ApigenEnv]
"""An env id (``"apigen/retail-v0"``, made with ``env_kwargs``) or a factory of fresh envs."""


class Trajectory(EpisodeResult):
    """One finished rollout: the conversation, the reward and its explanation (an episode record)."""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Every tool call in order: ``name``, ``arguments`` (as the agent wrote them) and the ``output``."""
        outputs = {m.get("tool_call_id"): m.get("content") for m in self.messages if m["role"] == "tool"}
        return [
            {
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
                "output": outputs.get(call.get("id")),
            }
            for m in self.messages
            if m["role"] == "assistant"
            for call in m.get("tool_calls") or []
        ]

    def tokenize(
        self, tokenizer: ChatTokenizer, tools: list[dict[str, Any]] | None = None, **template_kwargs: Any
    ) -> TokenizedEpisode:
        """:func:`tokenize_episode` of this conversation."""
        return tokenize_episode(self.messages, tokenizer, tools=tools, **template_kwargs)


class RolloutGroup(BaseModel):
    """G rollouts of the same task."""

    task_id: str
    trajectories: list[Trajectory]

    @property
    def rewards(self) -> list[float]:
        return [t.reward for t in self.trajectories]

    def advantages(self, scale: bool = True, epsilon: float = 1e-4) -> list[float]:
        """GRPO's group-relative advantages: reward minus the group mean, divided by the group's
        standard deviation when ``scale`` (plus ``epsilon``, so a group of equal rewards gives zeros)."""
        rewards = self.rewards
        mean = statistics.fmean(rewards)
        spread = statistics.pstdev(rewards) + epsilon if scale else 1.0
        return [(r - mean) / spread for r in rewards]


def env_factory(env: EnvSource, **env_kwargs: Any) -> Callable[[], ApigenEnv]:
    """Fresh envs from an env id (or a factory, returned as it is)."""
    if callable(env):
        if env_kwargs:
            raise TypeError("env_kwargs apply to an env id; a factory makes its envs itself")
        return env
    domain = ENV_IDS.get(env.split(":", 1)[-1])
    if domain is None:
        raise DataError(f"unknown env {env!r} (known: {', '.join(ENV_IDS)})")
    return lambda: ApigenEnv(domain, **env_kwargs)


def agent_factory(
    policy: Policy | LLMClient | None = None, agent: Callable[[], Agent] | None = None
) -> Callable[[], Agent]:
    """One new agent per rollout, from exactly one of a policy (function or ``LLMClient``) or ``agent``."""
    if (policy is None) == (agent is None):
        raise TypeError(
            "pass exactly one of policy (a function or an LLMClient) and agent (an agent factory)"
        )
    if agent is not None:
        return agent
    if isinstance(policy, Agent):
        raise TypeError(
            "an agent keeps per-episode state: pass agent=<a factory>, e.g. agent=lambda: MyAgent()"
        )
    if callable(policy):
        function = policy
        return lambda: PolicyAgent(function)
    if hasattr(policy, "complete"):
        client = policy
        return lambda: ToolCallingAgent(client)  # type: ignore[arg-type]
    raise TypeError(
        f"a policy is a function (messages, tools) -> action or an LLMClient, not {type(policy).__name__}"
    )


async def rollout_group(
    env: EnvSource,
    task_id: str,
    policy: Policy | LLMClient | None = None,
    *,
    agent: Callable[[], Agent] | None = None,
    size: int = 8,
    seed: int = 0,
    concurrency: int | None = None,
    **env_kwargs: Any,
) -> RolloutGroup:
    """``size`` rollouts of ``task_id``; rollout ``g`` resets with seed ``seed + g``."""
    groups = await rollout_groups(
        env, [task_id], policy, agent=agent, size=size, seed=seed, concurrency=concurrency, **env_kwargs
    )
    return groups[0]


async def rollout_groups(
    env: EnvSource,
    task_ids: Iterable[str],
    policy: Policy | LLMClient | None = None,
    *,
    agent: Callable[[], Agent] | None = None,
    size: int = 8,
    seed: int = 0,
    concurrency: int | None = None,
    **env_kwargs: Any,
) -> list[RolloutGroup]:
    """One :class:`RolloutGroup` per task, with at most ``concurrency`` rollouts in flight (default: all).

    An LLM failure after the client's retries ends that rollout with a labelled ``error`` and reward 0,
    as in evaluation; it is kept, never dropped.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    make_env = env_factory(env, **env_kwargs)
    make_agent = agent_factory(policy, agent)
    ids = list(task_ids)
    limit = asyncio.Semaphore(concurrency or len(ids) * size)

    async def one(task_id: str, index: int) -> Trajectory:
        async with limit:
            result = await run_episode_async(
                make_env(), make_agent(), task_id, trial=index, seed=seed + index
            )
        return Trajectory.model_validate(result, from_attributes=True)

    runs = await asyncio.gather(*(one(task_id, g) for task_id in ids for g in range(size)))
    return [
        RolloutGroup(task_id=task_id, trajectories=list(runs[i * size : (i + 1) * size]))
        for i, task_id in enumerate(ids)
    ]


def rollouts(
    env: EnvSource,
    task_ids: Sequence[str],
    policy: Policy | LLMClient | None = None,
    **options: Any,
) -> list[RolloutGroup]:
    """:func:`rollout_groups` from synchronous code (it starts and ends its own event loop)."""
    return asyncio.run(rollout_groups(env, task_ids, policy, **options))
