"""Ray as the executor of ``apigen-gym eval`` and ``generate``: a run's items in shards on a Ray
cluster's worker processes; the records stream back to the driver, which alone writes them.

- One actor per worker (``num_cpus=1``; by default one per CPU of the cluster), built from the run's
  recipe, plays shards with the run's own async code and concurrency, and takes share ``i`` of ``W``
  of the run's limit on LLM requests in flight (:mod:`apigen_gym.llm.budget`).
- The driver hands out shards, three at a time per worker so that none idles between shards, and
  passes each record to the run (which writes it) as it arrives; records travel as their JSON lines,
  in batches of what a worker finished within :data:`BATCH_SECONDS`.
- A worker that dies (killed, out of memory, its machine gone) takes with it only what it had not
  sent: the unfinished part of its shards (the run's ``rebuild`` says what is left) goes to a new
  worker. A shard whose worker dies :data:`MAX_TRIES` times stops the run.
- The data folders a run reads (``--data-dir``) are packed into the object store once and unpacked
  once per machine, under the system's temporary folder: workers need only the installed package.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import logging
import math
import os
import pickle
import shutil
import socket
import tempfile
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import ray
from pydantic import BaseModel
from ray.exceptions import ObjectLostError, RayActorError, RayTaskError

from apigen_gym.core.domain import read_data_from
from apigen_gym.llm import budget
from apigen_gym.util import gcbudget
from apigen_gym.util.executors import ExecutorError, ItemT, Job, OutT, Pool, ShardWorker, WorkerLost
from apigen_gym.util.jsonio import held_line, model_from_json

MIN_SHARD = 16
"""Items per shard at least, and at least a worker's ``concurrency``; but the last shards, one for each
worker, share what is left evenly (see :meth:`RayPool._size`)."""
MAX_SHARD = 1024
GUIDED = 4
"""A shard takes 1 / (GUIDED × workers) of the items left: large ones first (little overhead per
item), smaller towards the end (workers finish together)."""
SHARDS_PER_WORKER = 3
"""Shards given to a worker at once, each of at least ``concurrency`` items: while the oldest finishes
its last (longest) items, the others keep every one of the worker's slots busy."""
BATCH_SECONDS = 0.5
"""A worker sends what each shard finished within this long as one object: each object costs the
driver milliseconds of CPU (Ray's own work, in its receiving thread and its own), so fewer, larger
ones: an offline evaluation's driver spends 100 µs an episode at 0.5 s, 130 at 0.25 s, 180 at 0.1 s
and twice that at 0.02 s. A worker that dies loses at most this long of finished work, done again."""
MAX_TRIES = 3
"""Times a shard may lose its worker before the run stops."""
PROBE_SECONDS = 5.0
DATA_FILES = ("db/*.json", "tasks/*.jsonl")
"""What a data folder holds for the loaders (τ-bench layout): all that is shipped of it."""


T = TypeVar("T")


class ClusterUnreachable(ExecutorError):
    """No Ray cluster answers at the address given."""


# --- data folders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Packed:
    """A data folder as sent to workers: the names it goes by on the driver, and its files."""

    names: tuple[str, ...]
    digest: str
    files: ray.ObjectRef  # dict[str, bytes]: relative path → content


def pack(folder: Path) -> dict[str, bytes]:
    """The loader's files of a data folder (:data:`DATA_FILES`), by relative path."""
    files = {}
    for pattern in DATA_FILES:
        for path in sorted(folder.glob(pattern)):
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def _digest(files: dict[str, bytes]) -> str:
    hasher = hashlib.sha256()
    for name in sorted(files):
        hasher.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return hasher.hexdigest()


def unpack(files: dict[str, bytes], digest: str) -> Path:
    """The folder's copy on this machine (made by the first worker here that needs it)."""
    home = Path(tempfile.gettempdir()) / "apigen-gym-data" / digest
    if home.is_dir():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    draft = Path(tempfile.mkdtemp(dir=home.parent, prefix=f".{digest[:16]}."))
    for name, data in files.items():
        (draft / name).parent.mkdir(parents=True, exist_ok=True)
        (draft / name).write_bytes(data)
    try:
        draft.rename(home)
    except OSError:  # another worker on this machine was first
        shutil.rmtree(draft, ignore_errors=True)
    return home


# --- the worker -------------------------------------------------------------------------------

Batch = tuple[Any, list[Any]]
"""Records on their way to the driver: (their pydantic model, their JSON texts), or (``None``, the
records themselves) for other kinds."""


def _encode(records: list[Any]) -> bytes | Batch:
    """A batch as sent to the driver, pickled here and now (see :func:`pickled`).

    Pydantic records travel as the JSON lines they are written as: several times cheaper to make and
    to read than pickled models (whose nested models are rebuilt one by one), and the same records.
    Records that carry their line (:class:`~apigen_gym.util.jsonio.RecordLine`) make it as they are
    pickled.
    """
    kind = type(records[0])
    if issubclass(kind, BaseModel) and all(type(r) is kind for r in records):
        return pickled((kind, [r.model_dump_json() for r in records]))
    return pickled((None, records))


class _ModelsAsJson(dict):  # type: ignore[type-arg]
    """A pickler's dispatch table that sends pydantic models as their JSON (other types as usual)."""

    def __missing__(self, kind: type) -> Any:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return _model_as_json
        raise KeyError(kind)


def _model_as_json(model: BaseModel) -> tuple[Any, tuple[str]]:
    """A model as its JSON: the line it was written as when this process holds it (an accepted task,
    sent again to a worker), else its encoding."""
    line = held_line(model)
    return type(model).model_validate_json, (model.model_dump_json() if line is None else line,)


class _ShardPickler(pickle.Pickler):
    dispatch_table = _ModelsAsJson()


def pickled(value: T) -> bytes | T:
    """``value`` as sent to another process: pickled here, with the pydantic models in it (tasks,
    rows) as their JSON (several times quicker to make and to read than pickled models; their fields
    travel, as in the files the run writes); ``value`` itself (for Ray's own pickling) if plain
    pickling cannot take it.

    Pickled by the caller, not by Ray: Ray pickles what an actor's generator yields in a thread of
    its own, which competes for the interpreter lock with the actor's busy event loop. A Phase 2
    batch (about 200 dialogues, each made into its line as it is pickled) took 0.1 s (median) to
    1.6 s to leave its worker that way, and the driver saw shards end that late.
    """
    buffer = io.BytesIO()
    try:
        _ShardPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except (pickle.PicklingError, AttributeError, TypeError):  # e.g. a function defined in a function
        return value
    return buffer.getvalue()


def unpickled(sent: bytes | T) -> T:
    return pickle.loads(sent) if isinstance(sent, bytes) else sent  # type: ignore[no-any-return]


def pack_shard(items: Sequence[Any]) -> bytes | Sequence[Any]:
    """A shard's items as sent to a worker (:func:`pickled`); the items as they are if plain pickling
    cannot take them."""
    sent = pickled(list(items))
    return items if not isinstance(sent, bytes) else sent


def unpack_shard(sent: bytes | Sequence[Any]) -> Sequence[Any]:
    return unpickled(sent)


def _decode(sent: bytes | Batch) -> list[tuple[Any, str | None]]:
    """The records with the JSON lines they came as (``None`` for other kinds)."""
    kind, records = unpickled(sent)
    if kind is None:
        return [(record, None) for record in records]
    return [(model_from_json(kind, text), text) for text in records]


@ray.remote(num_cpus=1, max_restarts=0)
class ShardActor:
    """One worker process: builds each job's worker from its recipe and plays the shards it is given.

    It outlives a job (a generation run's phases share it): modules, loaded databases and warm caches
    stay; a job's worker is closed when the job ends.
    """

    def __init__(self) -> None:
        self.workers: dict[int, ShardWorker[Any, Any]] = {}

    async def ready(self) -> int:
        return os.getpid()

    async def load(
        self, job: int, recipe: list[ray.ObjectRef], folders: list[Packed], index: int, workers: int
    ) -> None:
        """Build job ``job``'s worker as worker ``index`` of ``workers``: the data folders first (the
        recipe may name the driver's), then the recipe."""
        for folder in folders:
            copy = unpack(await folder.files, folder.digest)
            read_data_from(folder.names[0], copy, *folder.names[1:])
        budget.take_share(index, workers)
        self.workers[job] = (await recipe[0])()

    async def run(self, job: int, shard: bytes | Sequence[Any]) -> AsyncIterator[bytes | Batch]:
        """The shard's records, in batches of those finished within :data:`BATCH_SECONDS`; full
        collections on the budget of a local run (:mod:`~apigen_gym.util.gcbudget`), between batches."""
        with gcbudget.gc_budget():
            async for batch in self._batches(job, shard):
                yield batch
                gcbudget.tick()

    async def _batches(self, job: int, shard: bytes | Sequence[Any]) -> AsyncIterator[bytes | Batch]:
        source = aiter(self.workers[job].run(unpack_shard(shard)))
        batch: list[Any] = []
        started = 0.0
        following: asyncio.Future[Sequence[Any]] | None = None
        while True:
            if following is None:
                following = asyncio.ensure_future(anext(source))
            wait = None if not batch else max(0.0, started + BATCH_SECONDS - time.monotonic())
            await asyncio.wait({following}, timeout=wait)
            if not following.done():  # the window closed: send what there is, keep waiting
                yield _encode(batch)
                batch = []
                continue
            try:
                outs = following.result()
            except StopAsyncIteration:
                break
            following = None
            if not batch:
                started = time.monotonic()
            batch.extend(outs)
            if time.monotonic() - started >= BATCH_SECONDS:
                yield _encode(batch)
                batch = []
        if batch:
            yield _encode(batch)

    async def unload(self, job: int) -> None:
        worker = self.workers.pop(job, None)
        if worker is not None:
            await worker.aclose()


# --- the driver -------------------------------------------------------------------------------


@dataclass
class _Shard(Generic[ItemT]):
    items: list[ItemT]
    tries: int = 1


class _Slot:
    """Worker ``index`` of a pool: its actor, once the job is loaded on it (again after a death)."""

    def __init__(self, index: int):
        self.index = index
        self.actor: Any = None
        self.shards = 0
        """Shards given to the actor and not finished."""
        self.starting: asyncio.Future[None] | None = None


class RayPool(Generic[ItemT, OutT]):
    """One job on the executor's workers; the driver's side of the shards they play."""

    def __init__(
        self,
        executor: RayExecutor,
        job: Job[ItemT, OutT],
        key: int,
        workers: int,
        folders: list[Packed],
        shard_size: int | None,
    ):
        self.executor = executor
        self.job = job
        self.key = key
        self.recipe = ray.put(job.recipe)
        self.folders = folders
        self.slots = [_Slot(i) for i in range(workers)]
        self.shard_size = shard_size

    @property
    def workers(self) -> int:
        return len(self.slots)

    async def _start(self, slot: _Slot) -> None:
        """Load the job on the slot's worker (a new one if it dies meanwhile); a recipe that fails
        stops the run."""
        for _ in range(MAX_TRIES):
            actor = await self.executor.actor(slot.index)
            try:
                await actor.load.remote(self.key, [self.recipe], self.folders, slot.index, self.workers)
            except RayTaskError as exc:  # the recipe's own error (bad data, say), raised as locally
                raise exc.as_instanceof_cause() from None
            except RayActorError as exc:
                self.executor.lost(slot.index, actor, exc)
                continue
            slot.actor = actor
            return
        raise ExecutorError(f"Ray workers died {MAX_TRIES} times while starting: stopping; see the Ray logs")

    def _size(self, left: int) -> int:
        """Items in the next shard, when ``left`` are still to hand out; once they would fill no more
        than the workers' :data:`SHARDS_PER_WORKER` shards of :data:`MIN_SHARD` (or ``concurrency``)
        items, a last shard for each worker, sharing them evenly (not ever smaller shards, each
        costing a round trip of tens of milliseconds however few its items)."""
        if self.shard_size is not None:
            return self.shard_size
        least = max(self.job.concurrency, MIN_SHARD)
        if left <= least * SHARDS_PER_WORKER * self.workers:
            return max(1, math.ceil(left / self.workers))
        return min(max(math.ceil(left / (GUIDED * self.workers)), least), MAX_SHARD)

    async def _play(self, actor: Any, items: list[ItemT]) -> None:
        async for ref in actor.run.remote(self.key, pack_shard(items)):
            sink = self.job.sink
            for out, line in _decode(await ref):
                sink(out, line)
            gcbudget.tick()

    async def run(self, items: Sequence[ItemT]) -> None:
        with gcbudget.gc_budget():  # the driver keeps what it writes: full collections on a budget
            await self._run(items)

    async def _run(self, items: Sequence[ItemT]) -> None:
        todo = deque(items)
        queue: deque[_Shard[ItemT]] = deque()
        """Shards cut short by a worker's death, handed out before new ones."""
        running: dict[asyncio.Future[None], tuple[_Slot, Any, _Shard[ItemT]]] = {}

        last = 0
        """The size of the last shards, once what is left makes one for each worker."""
        ending: set[int] = set()
        """Workers given a last shard: another one only when they have nothing else to play (a worker
        that starts late, or finishes early, still gets its share)."""

        def next_shard() -> _Shard[ItemT]:
            nonlocal last
            if queue:
                return queue.popleft()
            size = last or self._size(len(todo))
            if self.shard_size is None and size * self.workers >= len(todo):
                last = size
            return _Shard([todo.popleft() for _ in range(min(size, len(todo)))])

        def may_take(slot: _Slot) -> bool:
            return slot.shards < SHARDS_PER_WORKER and (
                bool(queue) or slot.index not in ending or slot.shards == 0
            )

        try:
            while todo or queue or running:
                for slot in self.slots:  # started now, given shards when ready
                    if slot.actor is None and slot.starting is None and (todo or queue):
                        slot.starting = asyncio.ensure_future(self._start(slot))
                ready = [s for s in self.slots if s.actor is not None]
                while (todo or queue) and ready:  # one shard to each worker in turn, up to its share
                    ready = [s for s in ready if may_take(s)]
                    for slot in sorted(ready, key=lambda s: s.shards):
                        if not (todo or queue):
                            break
                        shard = next_shard()
                        if last:
                            ending.add(slot.index)
                        playing = asyncio.ensure_future(self._play(slot.actor, shard.items))
                        running[playing] = (slot, slot.actor, shard)
                        slot.shards += 1
                starting = {s.starting for s in self.slots if s.actor is None and s.starting is not None}
                done, _ = await asyncio.wait({*running, *starting}, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    if future not in running:
                        future.result()  # a worker that could not start
                        continue
                    slot, actor, shard = running.pop(future)
                    slot.shards -= 1
                    error = future.exception()
                    if error is not None:
                        self._retry(queue, slot, actor, shard, error)
        finally:  # nothing runs on after an error (a worker still starting may serve the next run)
            for future in running:
                future.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _retry(
        self, queue: deque[_Shard[ItemT]], slot: _Slot, actor: Any, shard: _Shard[ItemT], error: BaseException
    ) -> None:
        """A shard that failed: the run's own error is raised as it would be locally; after a worker's
        death, what is left of the shard goes back to the front of the queue."""
        if isinstance(error, RayTaskError):
            raise error.as_instanceof_cause()
        if not isinstance(error, (RayActorError, ObjectLostError)):
            raise error
        if slot.actor is actor:  # the first of its shards to fail: the slot gets a new worker
            slot.actor = slot.starting = None
            self.executor.lost(slot.index, actor, error)
        left = [rest for item in shard.items if (rest := self.job.rebuild(item)) is not None]
        if not left:
            return
        if shard.tries >= MAX_TRIES:
            raise ExecutorError(
                f"{len(left)} items lost their Ray worker {shard.tries} times "
                f"(first: {left[0]!r}): stopping; see the Ray logs"
            )
        queue.appendleft(_Shard(left, shard.tries + 1))

    async def close(self) -> None:
        """Close the job's workers on the actors (they stay for the executor's next job)."""
        starting = [s.starting for s in self.slots if s.starting is not None and not s.starting.done()]
        for future in starting:
            future.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        actors = [slot.actor for slot in self.slots if slot.actor is not None]
        if actors:
            closing = asyncio.gather(*(a.unload.remote(self.key) for a in actors), return_exceptions=True)
            await asyncio.wait({asyncio.ensure_future(closing)}, timeout=10)


def _first_line(error: BaseException, skip: str = "") -> str:
    """The first telling line of a Ray error (Ray's messages run over many lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    telling = [line for line in lines if not (skip and line.startswith(skip))]
    return (telling or lines or [type(error).__name__])[0]


def _probe(address: str) -> None:
    """Fail fast, in one line, when nothing listens at ``host:port`` (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnreachable(
            f"--ray-address {address!r}: expected HOST:PORT (or auto, or ray://HOST:PORT)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address}: {reason.lower()}") from None


class RayExecutor:
    """Runs jobs on a Ray cluster; the driver (this process) receives every record and writes it.

    ``address``: a cluster's ``HOST:PORT`` (as ``ray start --head`` prints it), ``auto``, or
    ``ray://HOST:PORT``; default ``RAY_ADDRESS``, else the cluster ``ray start`` last started on this
    machine, else a new local one. ``workers``: default one per CPU of the cluster (never more than the
    run's ``max_in_flight``). A process already connected to Ray (``ray.init``) keeps its connection.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, shard_size: int | None = None):
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        self.address = address
        self.workers = workers
        self.shard_size = shard_size
        self.connected_here = False
        self.deaths = 0
        """Workers lost so far."""
        self._packed: dict[Path, tuple[str, ray.ObjectRef]] = {}
        self._actors: dict[int, Any] = {}
        self._jobs = itertools.count()

    def connect(self) -> RayExecutor:
        """Join the cluster; :class:`ClusterUnreachable` (one line) when it cannot be reached."""
        if ray.is_initialized():
            return self
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address not in (None, "auto", "local") and "://" not in address:
            _probe(address)
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
            where = f" at {address}" if address else ""
            raise ClusterUnreachable(f"cannot reach the Ray cluster{where}: {_first_line(exc)}") from None
        self.connected_here = True
        return self

    def close(self) -> None:
        """Stop the workers and leave the cluster (stopping it, if it was started here)."""
        for actor in self._actors.values():
            ray.kill(actor, no_restart=True)
        self._actors.clear()
        self._packed.clear()
        if self.connected_here:
            ray.shutdown()
            self.connected_here = False

    async def actor(self, index: int) -> Any:
        """Worker ``index``, started if needed (again, if it dies while starting)."""
        for _ in range(MAX_TRIES):
            actor = self._actors.get(index)
            if actor is None:
                actor = self._actors[index] = ShardActor.remote()  # type: ignore[attr-defined]
            try:
                await actor.ready.remote()
            except RayActorError as exc:
                self.lost(index, actor, exc)
                continue
            return actor
        raise ExecutorError(f"a Ray worker died {MAX_TRIES} times while starting: stopping; see the Ray logs")

    def lost(self, index: int, actor: Any, error: BaseException) -> None:
        """Worker ``index`` died: the next job or shard that needs it gets a new one."""
        if self._actors.get(index) is not actor:
            return
        ray.kill(self._actors.pop(index), no_restart=True)
        self.deaths += 1
        pids = [line.split(":", 1)[1].strip() for line in str(error).splitlines() if "pid:" in line]
        who = f"a Ray worker (pid {pids[0]})" if pids else "a Ray worker"
        warnings.warn(f"{who} died: its unfinished items run again on a new worker", WorkerLost, stacklevel=2)

    def __enter__(self) -> RayExecutor:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cluster_workers(self) -> int:
        """Workers a job gets: ``workers``, else one per CPU of the cluster."""
        self.connect()
        return self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def describe(self) -> str:
        self.connect()
        return f"ray ({ray.get_runtime_context().gcs_address}, {self.cluster_workers()} workers)"

    def _ship(self, folder: str | os.PathLike[str]) -> Packed:
        """A data folder in the object store (packed once per executor)."""
        path = Path(folder)
        resolved = path.resolve()
        if resolved not in self._packed:
            files = pack(resolved)
            self._packed[resolved] = (_digest(files), ray.put(files))
        digest, ref = self._packed[resolved]
        return Packed((str(resolved), os.fspath(path)), digest, ref)

    @asynccontextmanager
    async def pool(self, job: Job[ItemT, OutT]) -> AsyncIterator[Pool[ItemT]]:
        workers = self.cluster_workers()
        if job.max_workers is not None:
            workers = min(workers, job.max_workers)
        folders = [self._ship(folder) for folder in dict.fromkeys(job.data_dirs)]
        try:
            made = RayPool(self, job, next(self._jobs), workers, folders, self.shard_size)
        except (TypeError, ValueError) as exc:  # a recipe that cannot be pickled
            raise ExecutorError(f"the run cannot be sent to Ray workers: {_first_line(exc)}") from None
        try:
            yield made
        finally:
            await made.close()
