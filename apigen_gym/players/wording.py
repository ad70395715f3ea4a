"""Seeded paraphrase banks for the offline players: several wordings per utterance kind.

Without a seed a player always says the first wording of each bank (the canonical one, stable for
tests and for the loopback server, which cannot know the seed); with a seed it draws from the bank,
the same way for the same seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from apigen_gym.core.task import Task


class Phrasing:
    """Picks one wording per utterance from a bank: the first without a seed, a seeded draw with one."""

    def __init__(self, seed: int | str | None = None):
        self._rng = None if seed is None else random.Random(seed)

    @property
    def seeded(self) -> bool:
        return self._rng is not None

    def pick(self, bank: Sequence[str]) -> str:
        return bank[0] if self._rng is None else self._rng.choice(bank)

    def say(self, bank: Sequence[str], **values: str) -> str:
        """A wording of ``bank`` with its ``{placeholders}`` filled."""
        return self.pick(bank).format(**values)


def seed_for(seed: int | None, task: Task) -> str | None:
    """The phrasing seed of one player in one episode: the episode's seed and what the task says (so
    tasks played with one seed are worded differently, and equal tasks alike)."""
    return None if seed is None else f"{seed}/{task.instruction}"
