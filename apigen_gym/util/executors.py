"""Where a run's work is done: the seam between the run's driver and the workers that play its shards.

A run (an evaluation, a generation phase) is a list of *items*: (task, trial) pairs, blueprint
indices, tasks with their attempts. A *worker* is built from a recipe (picklable, so that another
process can build it) and plays shards of items with its own async concurrency, handing back each
finished record as soon as it is ready. The *driver*, the process that started the run, receives
every record and is the only one to write files: resuming, settings checks, reports and exports do
not depend on where the work ran, and a run may change executors between resumes.

:class:`LocalExecutor` builds one worker in the driver's own event loop and gives it every item.
``apigen_gym.integrations.ray.RayExecutor`` builds one worker per Ray worker process, hands out
shards, and gives a dead worker's unfinished items (``Job.rebuild``) to a new one.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from apigen_gym.util import gcbudget

ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")
ItemC = TypeVar("ItemC", contravariant=True)
OutC = TypeVar("OutC", covariant=True)
RecordC = TypeVar("RecordC", contravariant=True)

OnStep = Callable[[], None]
"""Called after every step of an episode: live progress, only where the worker shares the driver's process."""


class Sink(Protocol[RecordC]):
    """The driver's hands: records each finished record (writes it, counts it)."""

    def __call__(self, record: RecordC, /, line: str | None = None) -> None:
        """``line``: the record's JSON line as its worker made it, when it came from another process
        (written as it is, unless the record is changed first: the driver need not make it again)."""
        ...


class ShardWorker(Protocol[ItemC, OutC]):
    """Plays shards of a run's items; several shards may run at once in one worker, sharing its limits."""

    def run(self, shard: Sequence[ItemC], on_step: OnStep | None = None) -> AsyncIterator[Sequence[OutC]]:
        """The shard's records, in batches of those ready together."""
        ...

    async def aclose(self) -> None:
        """Release what the worker holds (LLM clients)."""
        ...


def keep(item: ItemT) -> ItemT | None:
    """The default :attr:`Job.rebuild`: an item is redone whole."""
    return item


@dataclass
class Job(Generic[ItemT, OutT]):
    """A run as an executor sees it: how to build a worker, and what the driver does with its records."""

    recipe: Callable[[], ShardWorker[ItemT, OutT]]
    """Builds one worker (in the worker's process: picklable by ``cloudpickle``)."""
    sink: Sink[OutT]
    """The driver's hands: records each finished record (writes it, counts it)."""
    rebuild: Callable[[ItemT], ItemT | None] = keep
    """What is left to do of an item whose worker died, from what ``sink`` has recorded (``None``: done)."""
    data_dirs: Sequence[str | os.PathLike[str]] = ()
    """User data folders the recipe reads: shipped to workers that may not see the driver's disk."""
    concurrency: int = 1
    """Items one worker plays at once (an executor sizes its shards from it)."""
    max_workers: int | None = None
    """At most this many workers (each takes a share of the run's limit on LLM requests in flight)."""
    on_step: OnStep | None = None


class Pool(Protocol[ItemC]):
    """Workers ready to play a job's items."""

    @property
    def workers(self) -> int: ...

    async def run(self, items: Sequence[ItemC]) -> None:
        """Play every item; each record goes to the job's ``sink`` before this returns."""
        ...


class Executor(Protocol):
    """Makes pools of workers for jobs."""

    name: str

    def pool(self, job: Job[ItemT, OutT]) -> AbstractAsyncContextManager[Pool[ItemT]]: ...

    def describe(self) -> str:
        """The executor in a few words, for a run's header line."""
        ...


class _LocalPool(Generic[ItemT, OutT]):
    workers = 1

    def __init__(self, worker: ShardWorker[ItemT, OutT], job: Job[ItemT, OutT]):
        self.worker = worker
        self.job = job

    async def run(self, items: Sequence[ItemT]) -> None:
        if not items:
            return
        with gcbudget.gc_budget():
            async for outs in self.worker.run(items, self.job.on_step):
                for out in outs:
                    self.job.sink(out)
                gcbudget.tick()


class LocalExecutor:
    """One worker in the driver's process and event loop, given every item at once."""

    name = "local"

    @asynccontextmanager
    async def pool(self, job: Job[ItemT, OutT]) -> AsyncIterator[Pool[ItemT]]:
        worker = job.recipe()
        try:
            yield _LocalPool(worker, job)
        finally:
            await worker.aclose()

    def describe(self) -> str:
        return "local"


_END = object()


async def stream(
    items: Iterable[ItemT],
    produce: Callable[[ItemT], AsyncIterator[OutT]],
    gate: asyncio.Semaphore,
    width: int,
) -> AsyncIterator[list[OutT]]:
    """Run ``produce(item)`` for every item, ``width`` at a time under ``gate`` (a worker's limit, shared
    by the shards it plays at once), and yield what they produce in batches of what is ready.

    Items start in order; a producer's error stops the others and is raised here.
    """
    todo = deque(items)
    ready: asyncio.Queue[object] = asyncio.Queue()

    async def puller() -> None:
        while todo:
            item = todo.popleft()
            async with gate:
                async for out in produce(item):
                    ready.put_nowait(out)
                    await asyncio.sleep(0)  # hand it on now, even if the work never waits (offline)

    pullers = [asyncio.ensure_future(puller()) for _ in range(max(1, min(width, len(todo))))]

    async def watch() -> None:
        try:
            await asyncio.gather(*pullers)
        finally:
            for task in pullers:
                task.cancel()
            ready.put_nowait(_END)

    watcher = asyncio.ensure_future(watch())
    try:
        finished = False
        while not finished:
            batch = [await ready.get()]
            while not ready.empty():
                batch.append(ready.get_nowait())
            if batch[-1] is _END:
                batch.pop()
                finished = True
            if batch:
                yield batch  # type: ignore[misc]
        await watcher  # a producer's error
    finally:
        if not watcher.done():
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


class WorkerLost(UserWarning):
    """A worker died mid-run; what it had not handed back runs again on another."""


class ExecutorError(RuntimeError):
    """The executor cannot run the job (a cluster out of reach, workers that keep dying): one line."""
