"""Full collections on a time budget: thresholds while inside, collections only from tick()."""

from __future__ import annotations

import gc
import time
import weakref

from apigen_gym.util import gcbudget


def test_no_full_collection_by_allocation_inside_and_thresholds_restored() -> None:
    before = gc.get_threshold()
    full: list[int] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(watch)
    try:
        with gcbudget.gc_budget():
            with gcbudget.gc_budget():  # re-entrant
                assert gc.get_threshold()[2] == gcbudget.NEVER
            assert gc.get_threshold()[2] == gcbudget.NEVER
            kept = [[i] for i in range(300_000)]  # survivors enough for several automatic full collections
            assert not full
            del kept
        assert gc.get_threshold() == before
    finally:
        gc.callbacks.remove(watch)


def test_tick_collects_cycles_when_due() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    with gcbudget.gc_budget():
        node = Node()
        alive = weakref.ref(node)
        for _ in range(3):  # promoted to the oldest generation
            gc.collect(1)
        del node
        gcbudget._BUDGET.due = 0.0
        runs, _ = gcbudget.spent()
        gcbudget.tick()
        assert alive() is None
        assert gcbudget.spent()[0] == runs + 1
        gcbudget.tick()  # not due again until its share of time has passed
        assert gcbudget.spent()[0] == runs + 1


def test_restart_makes_the_next_budget_begin_as_in_a_new_process() -> None:
    with gcbudget.gc_budget():
        gcbudget._BUDGET.due = 0.0
        gcbudget.tick()  # a full collection: the next one is put off by its share of time
        gcbudget.restart()  # inside a budget: nothing changes
        put_off = gcbudget._BUDGET.due
    assert put_off > 0.0
    gcbudget._BUDGET.due = time.monotonic() + 3600  # as after a long collection
    gcbudget.restart()
    started = time.monotonic()
    with gcbudget.gc_budget():
        assert started + 0.5 < gcbudget._BUDGET.due < started + 2.0  # the first a second in
