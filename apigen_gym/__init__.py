"""apigen-gym: customer-service worlds as Gymnasium environments, APIGen-MT data and τ-bench evaluation.

Importing the package registers the environments (``apigen/retail-v0``, ...) with Gymnasium and the
built-in user simulators. The names below are what most users need; each is loaded on first use, so
``import apigen_gym`` stays light (no model client, no HTTP stack).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from apigen_gym import players as _players  # noqa: F401  (registers the "scripted" and "llm" users)
from apigen_gym.core.registration import ENV_IDS, register_envs
from apigen_gym.util.version import VERSION as __version__

if TYPE_CHECKING:
    from apigen_gym.core.database import Database
    from apigen_gym.core.domain import Domain, load_domain
    from apigen_gym.core.env import ApigenEnv
    from apigen_gym.core.task import Task
    from apigen_gym.core.user import UserSimulator
    from apigen_gym.evaluation.records import EpisodeResult, EvalResults
    from apigen_gym.evaluation.runner import evaluate
    from apigen_gym.players.agent import Agent
    from apigen_gym.players.oracle import OracleAgent
    from apigen_gym.players.scripted_user import ScriptedUser

_LAZY = {
    "ApigenEnv": "apigen_gym.core.env",
    "Database": "apigen_gym.core.database",
    "Domain": "apigen_gym.core.domain",
    "load_domain": "apigen_gym.core.domain",
    "Task": "apigen_gym.core.task",
    "UserSimulator": "apigen_gym.core.user",
    "Agent": "apigen_gym.players.agent",
    "OracleAgent": "apigen_gym.players.oracle",
    "ScriptedUser": "apigen_gym.players.scripted_user",
    "evaluate": "apigen_gym.evaluation.runner",
    "EpisodeResult": "apigen_gym.evaluation.records",
    "EvalResults": "apigen_gym.evaluation.records",
}

__all__ = [
    "ENV_IDS",
    "Agent",
    "ApigenEnv",
    "Database",
    "Domain",
    "EpisodeResult",
    "EvalResults",
    "OracleAgent",
    "ScriptedUser",
    "Task",
    "UserSimulator",
    "__version__",
    "evaluate",
    "load_domain",
    "register_envs",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'apigen_gym' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


register_envs()
