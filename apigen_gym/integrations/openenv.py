"""OpenEnv: any env behind OpenEnv's own server (``openenv.core.env_server.create_app``).

Each WebSocket session (``/ws``, messages ``{"type": "reset"|"step"|"state"|"close", "data": ...}``)
gets its own env; a client that disconnects frees its session. The wire types are pydantic:

- :class:`AssistantTurn` (the action): an assistant message, ``{"content": "text for the customer"}``
  and/or ``{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}`` (OpenAI's ``{"function": ...}``
  form too), or one tool call written as ``{"name": ..., "arguments": {...}}``. A call the env cannot
  run (unknown tool, arguments that are not JSON or do not validate) is an ``Error: ...`` observation
  and the session goes on.
- :class:`TurnObservation`: ``text`` (the customer's reply or the tools' output), ``done``, ``reward``
  (at the end), ``metadata``: on reset the task id, split, tools (OpenAI schemas) and policy; at the end
  ``reward_info`` and the termination.

``reset`` takes ``task_id``, ``task_index`` or ``split`` (and ``seed``). Clients: OpenEnv's
``GenericEnvClient(base_url=...)``, verifiers' ``OpenEnvTaskset(base_url=..., resets=[{"task_id": ...}])``,
or a TRL ``environment_factory`` class that holds such a client.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
from pydantic import Field, model_validator

from apigen_gym.core.env import ApigenEnv
from apigen_gym.util.version import VERSION


class AssistantTurn(Action):
    """One assistant turn: text for the customer, tool calls run in order, or both."""

    content: str | None = Field(None, description="what the assistant says to the customer")
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list,
        description='tool calls, each {"name": ..., "arguments": {...}} (or OpenAI\'s {"function": {...}})',
    )

    @model_validator(mode="before")
    @classmethod
    def _one_call(cls, data: Any) -> Any:
        """``{"name": ..., "arguments": ...}`` is one tool call."""
        if isinstance(data, dict) and "name" in data and "tool_calls" not in data and "content" not in data:
            call = {k: data[k] for k in ("name", "arguments") if k in data}
            return {"tool_calls": [call], **{k: v for k, v in data.items() if k not in call}}
        return data


class TurnObservation(Observation):
    """What the assistant sees after a turn: the customer's reply or the tools' output."""

    text: str = Field(
        description="the customer's message, or the tool outputs (each 'Error: ...' on failure)"
    )


class EpisodeState(State):
    """Where the session's episode stands."""

    task_id: str | None = None
    termination: str | None = None
    done: bool = False


class ApigenEnvironment(Environment[AssistantTurn, TurnObservation, EpisodeState]):
    """An :class:`ApigenEnv` as an OpenEnv ``Environment`` (one per session)."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, make_env: Callable[[], ApigenEnv], env_id: str):
        super().__init__()
        self.env = make_env()
        self.env_id = env_id
        self._state = EpisodeState(done=True)

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        task_index: int | None = None,
        split: str | None = None,
        **_: Any,
    ) -> TurnObservation:
        options = {"task_id": task_id, "task_index": task_index, "split": split}
        text, info = self.env.reset(seed=seed, options={k: v for k, v in options.items() if v is not None})
        self._state = EpisodeState(episode_id=episode_id or str(uuid.uuid4()), task_id=info["task_id"])
        return TurnObservation(text=text, metadata=info)

    def step(self, action: AssistantTurn, timeout_s: float | None = None, **_: Any) -> TurnObservation:
        if self._state.done:
            raise RuntimeError("the episode has ended: send a reset")
        turn = action.model_dump(include={"content", "tool_calls"})
        text, reward, terminated, truncated, info = self.env.step(turn)
        done = terminated or truncated
        self._state.step_count += 1
        self._state.done, self._state.termination = done, info.get("termination")
        metadata = {
            key: info[key] for key in ("task_id", "steps", "termination", "reward_info") if key in info
        }
        return TurnObservation(
            text=text, done=done, reward=float(reward) if done else None, metadata=metadata
        )

    @property
    def state(self) -> EpisodeState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(
            name=self.env_id,
            description=f"apigen-gym {self.env.domain.name}: a customer-service conversation with tools "
            f"({len(self.env.tools)} tools, scripted or LLM customer, reward at the end)",
            version=VERSION,
        )


def make_app(
    env_id: str,
    make_env: Callable[[], ApigenEnv],
    max_sessions: int = 64,
    session_timeout: float | None = None,
) -> FastAPI:
    """OpenEnv's FastAPI app serving ``make_env``'s envs, at most ``max_sessions`` at once."""
    from openenv.core.env_server.types import ConcurrencyConfig

    factory = functools.partial(ApigenEnvironment, make_env, env_id)
    concurrency = ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=session_timeout)
    return create_app(
        factory,  # type: ignore[arg-type]
        AssistantTurn,
        TurnObservation,
        env_name=env_id.replace("/", "-"),
        concurrency_config=concurrency,
        state_cls=EpisodeState,
    )


def serve(
    env_id: str,
    make_env: Callable[[], ApigenEnv],
    host: str = "127.0.0.1",
    port: int = 8000,
    max_sessions: int = 64,
    session_timeout: float | None = None,
) -> None:
    """Serve until interrupted (uvicorn)."""
    import uvicorn

    app = make_app(env_id, make_env, max_sessions, session_timeout)
    uvicorn.run(app, host=host, port=port, log_level="warning")
