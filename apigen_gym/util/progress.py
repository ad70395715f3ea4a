"""A run's progress bar (tqdm) with a live postfix: drawn at most once per the bar's interval, and not
even formatted when the bar is hidden (offline runs finish thousands of records a second)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from tqdm import tqdm

Postfix = Callable[[], dict[str, Any]]
"""The postfix's values now (called only when the bar is shown)."""
_Bar = TypeVar("_Bar", bound="LiveBar")


class LiveBar:
    """``total`` things to finish, counted in ``unit``; silent unless ``enabled``."""

    def __init__(self, total: int, unit: str, enabled: bool):
        self.bar = tqdm(total=total, unit=unit, disable=not enabled, dynamic_ncols=True)
        self._drawn = 0.0

    def moved(self, postfix: Postfix) -> None:
        """Something moved short of finishing (a step): redraw the postfix if the interval has passed."""
        if self.bar.disable:
            return
        now = time.monotonic()
        if now - self._drawn >= self.bar.mininterval:
            self._drawn = now
            self.bar.set_postfix(postfix(), refresh=True)

    def finished(self, postfix: Postfix) -> None:
        """One more finished: counted, with the postfix as it now is (tqdm redraws on its interval)."""
        if self.bar.disable:
            return
        self.bar.set_postfix(postfix(), refresh=False)
        self.bar.update()

    def __enter__(self: _Bar) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
