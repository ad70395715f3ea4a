"""Scale-out on Ray: the same offline work on 1 and 2 workers, evaluation at latency spread over
workers, and the driver's append ceiling.

A local Ray cluster (every address on 127.0.0.1) is started once, with a logical CPU for each worker
of the 1- and 2-worker executors, whose workers stay up between their runs (the idle ones wait). Each
measurement runs the commands' own code (:func:`apigen_gym.generation.pipeline.generate`,
:func:`apigen_gym.evaluation.evaluate`) with a :class:`~apigen_gym.integrations.ray.RayExecutor` of W
workers, started and warmed by a small run first, and with the local executor (this process) as the
reference; rounds take turns, and each figure is the median of the rounds. Each measured run starts
as a new command would (:func:`start_afresh`, outside the timing): without the rows the runs before
left in memory for reading back, which the driver's full collections would otherwise walk.

1. offline generation: ``generate retail -n N`` (template proposer, rules only, scripted user, oracle
   agent), verified dialogues per second of the whole run (both phases);
2. offline evaluation: the oracle agent and the scripted user on the retail test split × T trials,
   episodes per second;
   for both, efficiency at W workers = (rate at W / rate at 1 worker) / W (target ≥ 0.8 at 2), and,
   in the same rounds, the machine's own ceiling: the same work split between 1 or 2 plain processes
   (no Ray, no driver; each runs its share as a local run, spawned once and warmed), whose
   efficiency is the most any executor could get on this machine at that time;
3. evaluation against the loopback server (a subprocess) at latency L: the tool-calling agent on the
   ``oracle`` model, C episodes in flight per worker, LLM calls per second (the server's own count)
   in the steady window (from 1.5 L after the start until fewer episodes are left than slots), over
   the ideal W × C / L;
4. the driver's append ceiling: two workers hand back records (an oracle episode's eval record, a
   Phase 1 row accepting a task, a verified Phase 2 dialogue; each parsed anew in the worker) as fast
   as they can, as the commands' workers do (an eval record as its line and its summary, all but
   its messages, which is all the driver reads; a Phase 1 row as its line, its task's line and
   signature, and the facts the stats count: the driver reads the task, which it keeps, not the
   row; a dialogue as its line and its facts, which the driver does not read); records per second
   the driver takes in and appends, and its CPU per record (all its threads), whence the records per
   second one core of driver can append; beside the same appends without Ray.

    python benchmarks/scale.py              # n = 2000, 48 trials, L = 1 s with C = 32 (about 10 minutes)
    python benchmarks/scale.py --quick      # n = 300, 2 trials, L = 0.2 s with C = 16
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from tabulate import tabulate

from apigen_gym.core.domain import load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.evaluation.records import Episode, EpisodeResult
from apigen_gym.evaluation.runner import RESULTS_FILE, evaluate
from apigen_gym.generation.blueprint import ProposalRecord
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.dialogue_facts import Sent
from apigen_gym.generation.phase2 import DialogueRecord, Played, read_records
from apigen_gym.generation.pipeline import generate
from apigen_gym.generation.proposed import Proposed
from apigen_gym.generation.store import RunPaths, read_models
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.loopback.server import start_server_process
from apigen_gym.players.model_agents import ToolCallingAgent
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.util import gcbudget
from apigen_gym.util.executors import Executor, Job
from apigen_gym.util.jsonio import JsonlAppender, forget_written

if TYPE_CHECKING:
    from apigen_gym.integrations.ray import RayExecutor

DOMAIN = "retail"
WARMUP_PERIODS = 1.5


def fresh(root: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))


def make_env() -> ApigenEnv:
    return ApigenEnv(DOMAIN)


def oracle() -> OracleAgent:
    return OracleAgent(load_domain(DOMAIN).tools)


# --- 1 and 2: offline work -----------------------------------------------------------------------------


def start_afresh() -> None:
    """Before a measured run: this process as a new command's would be, without the rows the runs
    before left in memory for reading back (up to half a million objects, which each full collection
    of the garbage collector would walk), and with the budget of full collections started anew (not
    put off by the last run's); outside the timing."""
    forget_written()
    gc.collect()
    gcbudget.restart()


def generation_rate(n: int, root: Path, executor: Executor | None) -> float:
    """Verified dialogues per second of a whole offline run."""
    start_afresh()
    started = time.perf_counter()
    stats = generate(GenerationConfig(domain=DOMAIN, n=n, seed=1), fresh(root, "gen"), executor=executor)
    return stats.phase2.dialogues / (time.perf_counter() - started)


def evaluation_rate(trials: int, root: Path, executor: Executor | None) -> float:
    """Oracle episodes per second."""
    start_afresh()
    started = time.perf_counter()
    results = evaluate(make_env, oracle, fresh(root, "eval"), trials=trials, concurrency=8, executor=executor)
    assert all(r.reward == 1.0 for r in results.summaries)  # as the command reads them: no messages
    return len(results) / (time.perf_counter() - started)


def plain_run(kind: str, size: int, seed: int, root: str) -> tuple[int, float, float]:
    """In a plain process: an offline generation of ``size`` tasks, or an oracle evaluation of ``size``
    trials; the records it made, and when it started and ended (the machine's clock, after
    :func:`start_afresh`)."""
    start_afresh()
    started = time.time()
    if kind == "generate":
        config = GenerationConfig(domain=DOMAIN, n=size, seed=seed)
        made = generate(config, fresh(Path(root), "plain")).phase2.dialogues
    else:
        made = len(evaluate(make_env, oracle, fresh(Path(root), "plain"), trials=size, concurrency=8))
    return made, started, time.time()


class PlainProcesses:
    """The machine's own ceiling: the same work split between plain processes (no Ray, no driver),
    started once (spawned: this process holds Ray's threads) and warmed like the workers."""

    def __init__(self, root: Path):
        self.root = str(root)
        self.pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
        list(self.pool.map(plain_run, ["generate"] * 2, [20] * 2, [1, 2], [self.root] * 2))
        list(self.pool.map(plain_run, ["eval"] * 2, [1] * 2, [1, 2], [self.root] * 2))

    def rate(self, kind: str, size: int, processes: int) -> float:
        """Records per second of ``processes`` processes sharing ``size`` between them."""
        share = math.ceil(size / processes)
        runs = list(
            self.pool.map(
                plain_run,
                [kind] * processes,
                [share] * processes,
                range(1, processes + 1),
                [self.root] * processes,
            )
        )
        made = sum(made for made, _, _ in runs)
        return made / (max(ended for _, _, ended in runs) - min(started for _, started, _ in runs))

    def close(self) -> None:
        self.pool.shutdown()


def offline_table(
    name: str,
    measure: Callable[[Executor | None], float],
    warm: Callable[[Executor | None], float],
    plain: Callable[[int], float],
    executors: dict[int, RayExecutor],
    rounds: int,
) -> list[tuple[Any, ...]]:
    for executor in (None, *executors.values()):
        warm(executor)  # workers started, modules and data loaded
    rates: dict[str, list[float]] = {
        "local": [],
        "plain 1": [],
        "plain 2": [],
        **{str(w): [] for w in executors},
    }
    for _ in range(rounds):
        rates["local"].append(measure(None))
        for workers, executor in executors.items():
            rates[str(workers)].append(measure(executor))
        for processes in (1, 2):
            rates[f"plain {processes}"].append(plain(processes))
    median = {key: statistics.median(values) for key, values in rates.items()}

    def row(executor: str, rate: float, one: float | None, workers: int) -> tuple[Any, ...]:
        if one is None:
            return (name, executor, round(rate, 1), "", "")
        speedup = rate / one
        return (name, executor, round(rate, 1), f"{speedup:.2f}×", f"{speedup / workers:.2f}")

    rows = [row("local (this process)", median["local"], None, 1)]
    rows += [row(f"ray, {w} worker{'s' * (w > 1)}", median[str(w)], median["1"], w) for w in executors]
    rows += [
        row(f"plain, {w} process{'es' * (w > 1)} (no Ray)", median[f"plain {w}"], median["plain 1"], w)
        for w in (1, 2)
    ]
    return rows


# --- 3: evaluation against the loopback server at latency --------------------------------------------


def server_count(url: str) -> int:
    with urllib.request.urlopen(url.rstrip("/").removesuffix("/v1") + "/stats", timeout=10) as answer:
        return int(json.load(answer)["completed"])


def latency_row(
    url: str,
    latency: float,
    workers: int,
    concurrency: int,
    per_slot: int,
    root: Path,
    executor: RayExecutor | None,
) -> tuple[Any, ...]:
    """LLM calls per second in the steady window over the ideal ``workers × concurrency / latency``
    (``executor`` ``None``: this process, one worker)."""
    slots = workers * concurrency
    tasks = [t.id for t in load_domain(DOMAIN).tasks("test")]
    trials = math.ceil(slots * per_slot / len(tasks))
    ids = tasks[: math.ceil(slots * per_slot / trials)]
    total = len(ids) * trials
    out = fresh(root, "latency")
    client = LLMClient(LLMSettings(model="oracle", base_url=url, timeout=60 + 10 * latency))
    samples: list[tuple[float, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        results = out / RESULTS_FILE
        while not done.is_set():
            written = results.read_bytes().count(b"\n") if results.is_file() else 0
            samples.append((time.perf_counter(), server_count(url), written))
            done.wait(latency / 5)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    try:
        agent = partial(ToolCallingAgent, client)
        results = evaluate(
            make_env, agent, out, ids, trials, concurrency, clients=[client], executor=executor
        )
    finally:
        done.set()
        sampler.join()
    passed = all(r.reward == 1.0 for r in results.summaries)
    assert len(results) == total and passed, "every oracle episode passes"
    steady = [s for s in samples if s[0] >= started + WARMUP_PERIODS * latency and s[2] <= total - slots]
    if len(steady) < 2:
        raise SystemExit("no steady window: give more episodes per slot (--per-slot)")
    (t0, c0, _), (t1, c1, _) = steady[0], steady[-1]
    rate = (c1 - c0) / (t1 - t0)
    ideal = slots / latency
    where = f"local, C = {concurrency}" if executor is None else f"ray, {workers} × C = {concurrency}"
    return (
        where,
        slots,
        latency,
        total,
        round(t1 - t0, 1),
        round(rate, 1),
        round(ideal, 1),
        f"{rate / ideal:.3f}",
    )


# --- 4: the driver's append ceiling --------------------------------------------------------------------


class Replay:
    """A worker that hands back one record per item, parsed anew from its JSON each time (a Phase 1 row
    and a Phase 2 dialogue as their workers hand them back: a :class:`Proposed`, a :class:`Played`)."""

    def __init__(self, model: type[BaseModel], text: str):
        self.model = model
        self.text = text
        self.sent: Sent = (set(), set())

    async def run(self, shard: Sequence[int], on_step: Any = None) -> AsyncIterator[list[Any]]:
        for _ in shard:
            record = self.model.model_validate_json(self.text)
            if isinstance(record, DialogueRecord):
                yield [Played(record, self.sent)]  # as a Phase 2 worker sends it: its bigrams once
            elif isinstance(record, EpisodeResult):
                yield [Episode(record)]
            else:
                yield [Proposed(record) if isinstance(record, ProposalRecord) else record]

    async def aclose(self) -> None:
        pass


def sample_records(root: Path) -> dict[str, BaseModel]:
    """An oracle episode's eval record, a Phase 1 row that accepts a task and a verified Phase 2
    dialogue, as the driver receives them."""
    episode = evaluate(make_env, oracle, fresh(root, "record"))[0]
    run = fresh(root, "dialogue")
    generate(GenerationConfig(domain=DOMAIN, n=1, seed=1), run)
    row = next(r for r in read_models(RunPaths(run).proposals, ProposalRecord) if r.task is not None)
    (dialogue, *_) = read_records(RunPaths(run).dialogues)
    return {"eval episode": episode, "Phase 1 row (accepting)": row, "Phase 2 dialogue": dialogue}


def append(appender: JsonlAppender, record: Any, line: str | None = None) -> None:
    """What the driver does with a record it receives: appends its line (a Phase 1 row's and a Phase 2
    dialogue's are in it; a Phase 1 row's accepted task is read, to be kept, and appended too)."""
    if isinstance(record, (Played, Episode)):
        appender.write(record.held, record.line)
    elif isinstance(record, Proposed):
        appender.write(record.held, record.line)
        appender.write(record.task, record.task_line)
    else:
        appender.write(record, line)


def ceiling_row(
    name: str, record: BaseModel, count: int, root: Path, executor: RayExecutor
) -> tuple[Any, ...]:
    """Records per second two replaying workers get appended, and the driver's CPU (all its threads)
    per record, beside the appends alone."""
    text = record.model_dump_json()
    model = type(record)

    async def through_ray(out: Path) -> tuple[float, float]:
        with JsonlAppender(out / "records.jsonl") as appender:
            job = Job(partial(Replay, model, text), partial(append, appender), concurrency=1)
            async with executor.pool(job) as pool:
                await pool.run(list(range(1000)))  # workers started and warm
                started, cpu = time.perf_counter(), time.process_time()
                await pool.run(list(range(count)))
                return time.perf_counter() - started, time.process_time() - cpu

    seconds, cpu = asyncio.run(through_ray(fresh(root, "ceiling")))
    parsed = [model.model_validate_json(text) for _ in range(count)]
    with JsonlAppender(fresh(root, "append") / "records.jsonl") as appender:
        started = time.perf_counter()
        for one in parsed:
            appender.write(one)
        alone = time.perf_counter() - started
    kib = round(len(text) / 1024, 1)
    return (
        name,
        kib,
        count,
        round(count / seconds),
        round(cpu / count * 1e3, 3),
        round(count / cpu),
        round(count / alone),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=2000, help="tasks of the offline generation")
    parser.add_argument("--trials", type=int, default=48, help="trials of the offline evaluation")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32, help="episodes in flight per worker")
    parser.add_argument("--per-slot", type=int, default=3, help="episodes per slot in the latency runs")
    parser.add_argument("--records", type=int, default=20000, help="records of the ceiling run")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["offline", "latency", "ceiling"], action="append")
    args = parser.parse_args()
    if args.quick:
        args.n, args.trials, args.rounds, args.latency, args.concurrency, args.records = (
            300,
            2,
            1,
            0.2,
            16,
            5000,
        )
    parts = set(args.only or ["offline", "latency", "ceiling"])

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read by Ray on import: 127.0.0.1 only
    import ray

    from apigen_gym.integrations.ray import RayExecutor

    executors = {w: RayExecutor(workers=w) for w in (1, 2)}
    # a logical CPU per worker of both executors: the idle one's worker waits, it does not block the other's
    ray.init(num_cpus=sum(executors), include_dashboard=False, logging_level=logging.ERROR)
    cluster = ray.get_runtime_context().gcs_address
    print(f"Ray {ray.__version__}, cluster {cluster}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    try:
        with tempfile.TemporaryDirectory(prefix="scale-") as scratch:
            root = Path(scratch)
            if "offline" in parts:
                runs = [  # name, the measure, its size and the warm-up's, the plain processes' kind
                    (f"generate {DOMAIN} -n {args.n} (verified/s)", generation_rate, args.n, 20, "generate"),
                    (
                        f"eval oracle, {args.trials} trials (episodes/s)",
                        evaluation_rate,
                        args.trials,
                        1,
                        "eval",
                    ),
                ]
                plain = PlainProcesses(root)
                try:
                    rows = [
                        row
                        for name, rate, size, warm, kind in runs
                        for row in offline_table(
                            name,
                            partial(rate, size, root),
                            partial(rate, warm, root),
                            partial(plain.rate, kind, size),
                            executors,
                            args.rounds,
                        )
                    ]
                finally:
                    plain.close()
                print()
                print(tabulate(rows, headers=["offline run", "executor", "rate", "speed-up", "efficiency"]))
            if "latency" in parts:
                for executor in executors.values():
                    evaluation_rate(1, root, executor)  # workers started and warm
                process, url = start_server_process(["--latency", str(args.latency)])
                try:
                    measure = partial(latency_row, url, args.latency)
                    c = args.concurrency
                    rows = [
                        measure(1, c, args.per_slot, root, None),
                        measure(1, 2 * c, args.per_slot, root, None),
                    ]
                    rows += [
                        measure(w, c, args.per_slot, root, executor) for w, executor in executors.items()
                    ]
                finally:
                    process.terminate()
                    process.wait(timeout=10)
                print()
                headers = [
                    "executor",
                    "in flight",
                    "L s",
                    "episodes",
                    "window s",
                    "calls/s",
                    "ideal",
                    "of ideal",
                ]
                print(tabulate(rows, headers=headers))
            if "ceiling" in parts:
                rows = [
                    ceiling_row(name, record, args.records, root, executors[2])
                    for name, record in sample_records(root).items()
                ]
                print()
                headers = [
                    "record",
                    "KiB",
                    "records",
                    "through Ray /s",
                    "driver CPU ms",
                    "per driver core /s",
                    "appends alone /s",
                ]
                print(tabulate(rows, headers=headers))
    finally:
        for executor in executors.values():
            executor.close()
        ray.shutdown()
    print(f"\nload at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
