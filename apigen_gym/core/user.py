"""The human side of the conversation, as the env sees it: the simulator interface and the stop signal.

``STOP`` in a user message ends the episode. Simulators are named so that ``gym.make(..., user="llm")``
works: :func:`register_user` adds a name, :func:`make_user` builds one. The built-in ones (``scripted``,
``llm``) live in :mod:`apigen_gym.players` and are registered when the package is imported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from apigen_gym.core.task import Task

STOP = "###STOP###"


class UserSimulator(ABC):
    """Produces the human turns of one conversation at a time."""

    name: str = "user"

    @abstractmethod
    def start(self, task: Task, seed: int | None = None) -> str:
        """Begin a conversation about ``task``; return the user's first message."""

    @abstractmethod
    def respond(self, message: str) -> str:
        """The user's reply to the agent's ``message``."""

    async def start_async(self, task: Task, seed: int | None = None) -> str:
        return self.start(task, seed)

    async def respond_async(self, message: str) -> str:
        return self.respond(message)

    def close(self) -> None:  # noqa: B027 (optional: most simulators hold nothing)
        """Release what the simulator holds (an LLM user: the connections of a client it made)."""

    async def close_async(self) -> None:
        """:meth:`close` from a coroutine."""
        self.close()


UserFactory = Callable[..., UserSimulator]
"""Builds a simulator from the env's user options (``user_model``, ``base_url``, ``user_best_of``)."""

_FACTORIES: dict[str, UserFactory] = {}


def register_user(name: str, factory: UserFactory) -> None:
    """Make ``user=name`` mean ``factory(**options)`` for every env made afterwards."""
    _FACTORIES[name] = factory


def user_names() -> list[str]:
    return sorted(_FACTORIES)


def make_user(user: str | UserSimulator, **options: Any) -> UserSimulator:
    """A user simulator from its registered name, or as given."""
    if isinstance(user, UserSimulator):
        return user
    factory = _FACTORIES.get(user)
    if factory is None:
        known = ", ".join(repr(n) for n in user_names())
        raise ValueError(f"unknown user {user!r}: use one of {known} or pass a UserSimulator instance")
    return factory(**options)
