"""This process's share of a run's limit on LLM requests in flight (``max_in_flight``).

A run spread over W worker processes keeps its limit by giving each worker a fixed share: worker
``i`` of ``W`` may send ``L // W`` requests at once to a server whose limit is ``L``, plus one for the
first ``L % W`` workers, so the shares add up to ``L`` exactly. A process that is not one of several
workers has the whole limit.
"""

from __future__ import annotations

_share = (0, 1)
"""(this worker's index, the number of workers) of the run this process works for."""


def take_share(index: int, workers: int) -> None:
    """Make this process worker ``index`` of ``workers`` (``0, 1``: the whole limit)."""
    global _share
    if not 0 <= index < workers:
        raise ValueError(f"worker {index} of {workers}: the index must be in [0, workers)")
    _share = (index, workers)


def share(limit: int) -> int:
    """This process's part of ``limit``; never 0 (a run must have no more workers than its limit)."""
    index, workers = _share
    part = limit // workers + (index < limit % workers)
    if part < 1:
        raise ValueError(
            f"a limit of {limit} requests in flight cannot be shared by {workers} workers: "
            f"use at most {limit}"
        )
    return part
