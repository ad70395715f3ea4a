"""Full garbage collections on a time budget, for long runs that keep many objects alive.

CPython's cyclic collector runs a full collection each time the objects that survived the young
generations grow by a quarter. A run that keeps its records (accepted tasks, a file's rows kept for
reading back, results to return) makes each full collection walk all of them: 0.2–0.4 s per million
objects here, a fifth of an offline generation's time and half of a Ray driver's. Inside
:func:`gc_budget` the young generations are collected as usual, but full collections run only from
:func:`tick`, and only once the time since the last one is at least its duration divided by
:data:`SHARE`: they take at most that share of the run, and garbage cycles that outlive the young
generations are still freed. The budget is the process's: nested and successive uses share it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

SHARE = 0.02
"""Full collections take at most this share of the time inside the budget."""
NEVER = 2**30
"""A third threshold no run reaches: no full collection triggered by allocations."""


class _Budget:
    depth = 0
    saved: tuple[int, int, int] = (700, 10, 10)
    due = 0.0
    collections = 0
    seconds = 0.0


_BUDGET = _Budget()


@contextmanager
def gc_budget() -> Iterator[None]:
    """Full collections only from :func:`tick`, on the budget, while inside (re-entrant)."""
    if _BUDGET.depth == 0:
        _BUDGET.saved = gc.get_threshold()
        young, middle, _ = _BUDGET.saved
        gc.set_threshold(young, middle, NEVER)
        _BUDGET.due = max(_BUDGET.due, time.monotonic() + 1.0)  # short runs need none
    _BUDGET.depth += 1
    try:
        yield
    finally:
        _BUDGET.depth -= 1
        if _BUDGET.depth == 0:
            gc.set_threshold(*_BUDGET.saved)


def tick() -> None:
    """A full collection, if one is due (call it often: it costs a clock read otherwise)."""
    now = time.monotonic()
    if now < _BUDGET.due or _BUDGET.depth == 0 or not gc.isenabled():
        return
    started = time.perf_counter()
    gc.collect()
    took = time.perf_counter() - started
    _BUDGET.collections += 1
    _BUDGET.seconds += took
    _BUDGET.due = time.monotonic() + took / SHARE


def restart() -> None:
    """Forget when the last full collection ran: the next budget starts as in a new process (the
    first full collection a second in). For a benchmark that measures run after run in one process."""
    if _BUDGET.depth == 0:
        _BUDGET.due = 0.0


def spent() -> tuple[int, float]:
    """Full collections run by :func:`tick` so far, and their seconds."""
    return _BUDGET.collections, _BUDGET.seconds
