"""A random agent: random tool calls, random words, sometimes stops. A floor for any score."""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from apigen_gym.core.task import Task
from apigen_gym.core.user import STOP
from apigen_gym.players.agent import Agent

if TYPE_CHECKING:
    from apigen_gym.core.env import ApigenEnv


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
