"""Numbers on the command line with their bounds: a value out of range is refused by argparse itself,
as one line that names the flag (``argument --port: must be at most 65535, not 99999``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def bounded(
    kind: Callable[[str], N], low: N | None = None, high: N | None = None, *, above: bool = False
) -> Callable[[str], N]:
    """An argparse ``type``: ``kind`` (int or float, finite) with ``low ≤ value ≤ high``
    (``low < value`` when ``above``)."""

    def parse(text: str) -> N:
        value = kind(text)  # a ValueError reads "invalid int value: 'x'", as for a plain type=int
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
        if low is not None and (value < low or (above and value == low)):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {low}, not {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, not {text}")
        return value

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


POSITIVE_INT = bounded(int, 1)
"""A count of at least one (trials, steps, candidates, workers)."""
NON_NEGATIVE_INT = bounded(int, 0)
"""A count that may be zero (retries)."""
PORT = bounded(int, 0, 65535)
"""A TCP port; 0 asks the system for a free one."""
SHARE = bounded(float, 0.0, 1.0)
"""A rate or share in [0, 1]."""
NON_NEGATIVE = bounded(float, 0.0)
"""A non-negative number (seconds of latency, sampling temperature)."""
POSITIVE = bounded(float, 0.0, above=True)
"""A number above zero (a timeout)."""
