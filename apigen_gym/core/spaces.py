"""Gymnasium spaces for conversations."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

_SAMPLE_CHARS = np.array(list(string.ascii_letters + string.digits + string.punctuation + " "))


class Text(spaces.Space[str]):
    """Any string of any length; ``sample()`` draws printable text of up to ``sample_length`` chars.

    Unlike ``gymnasium.spaces.Text`` it has no charset or length limit, because a conversation can
    contain anything an agent or a user types.
    """

    def __init__(self, sample_length: int = 64, seed: int | np.random.Generator | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        self.sample_length = sample_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        length = int(self.np_random.integers(1, self.sample_length + 1))
        return "".join(self.np_random.choice(_SAMPLE_CHARS, size=length))

    def contains(self, x: Any) -> bool:
        return isinstance(x, str)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "Text(any string)"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Text)
