"""Generation speed: offline verified dialogues per second per core, and Phase 2 against a slow server.

Offline (target ≥ 50 verified dialogues per second per core): Phase 2 alone on N accepted tasks (the
retail sampler's train tasks, dressed as Phase 1 output), and the whole offline pipeline of each domain
(Phase 1 template proposer and rule validators, recombination, Phase 2, stats), with the tasks the
template proposer had the domain's sampler build per proposal. Rates are per CPU second of this
process (so per core), median of several runs, each on a fresh run folder.

Loopback: Phase 2 with the agent played by the ``oracle`` model of the loopback server at latency
L = 1 s, scripted user, C = 64 and 256 tasks in flight, against the ideal C / (L × LLM calls per
dialogue). Tasks have unique opening messages: the server's oracle finds its task by the opening,
and two tasks with one opening can make it play the other one (which Phase 2 then rightly rejects).
"steady" is measured from the server's counters while at least 90 % of C calls are in flight (the
tail, when fewer tasks are left than workers, is left out); "end to end" includes it.

    python benchmarks/generation.py                      # everything
    python benchmarks/generation.py --skip-server        # offline only
    python benchmarks/generation.py --n 500 --repeats 5 --concurrency 64 256
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from tabulate import tabulate

from apigen_gym.core.database import Database
from apigen_gym.core.domain import load_domain
from apigen_gym.core.task import Task
from apigen_gym.domains.retail import DOMAIN
from apigen_gym.domains.retail.sampler import sample_tasks
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.phase1 import run_phase1
from apigen_gym.generation.phase2 import read_records, run_phase2, write_task_split
from apigen_gym.generation.pipeline import prepare_run
from apigen_gym.generation.proposers import TemplateProposer, sampler_builder
from apigen_gym.generation.stats import compute_stats
from apigen_gym.generation.store import RunPaths
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.loopback.models import opening_of
from apigen_gym.loopback.server import start_server_process
from apigen_gym.util.jsonio import write_jsonl

TARGET = 50.0


def accepted(n: int, seed: int = 1) -> list[Task]:
    """``n`` sampler tasks with a provenance dict, as Phase 1 writes them."""
    tasks = sample_tasks(DOMAIN.database(), n, seed, "train")
    provenance = {"source": "template", "rounds": 1, "seed": seed, "env_version": DOMAIN.version}
    return [t.model_copy(update={"meta": {**t.meta, "provenance": provenance}}) for t in tasks]


def unique_openings(tasks: list[Task]) -> list[Task]:
    """Tasks whose scripted opening no other task shares: the server's oracle finds its task by it."""
    counts = Counter(opening_of(t) for t in tasks)
    return [t for t in tasks if counts[opening_of(t)] == 1]


def fresh_run(root: Path, name: str, tasks: list[Task]) -> RunPaths:
    paths = RunPaths(root / name)
    write_jsonl(paths.accepted, [t.model_dump(mode="json") for t in tasks])
    return paths


def offline_phase2(tasks: list[Task], repeats: int, root: Path) -> dict[str, Any]:
    """Phase 2 alone, offline: verified dialogues per CPU second, median of ``repeats`` (after a warm-up)."""
    config = GenerationConfig(domain="retail", n=len(tasks), phase="2", concurrency=64)
    run_phase2(config, fresh_run(root, "warm-up", tasks[:20]))
    rates, walls, kept = [], [], 0
    for r in range(repeats):
        paths = fresh_run(root, f"phase2-{r}", tasks)
        cpu, wall = time.process_time(), time.perf_counter()
        stats = run_phase2(config, paths)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        kept = stats.dialogues
        rates.append(kept / cpu)
        walls.append(kept / wall)
    return {"what": f"Phase 2 alone ({len(tasks)} tasks)", "dialogues": kept, "rates": rates, "walls": walls}


class CountingBuilder:
    """A domain's ``build_task``, counting the tasks it builds for the template proposer."""

    def __init__(self, domain: str):
        self.build = sampler_builder(domain)
        self.calls = 0

    def __call__(self, database: Database, rng: random.Random, user_id: str, *twist: Any) -> Task | None:
        self.calls += 1
        return self.build(database, rng, user_id, *twist)


def offline_pipeline(domain: str, n: int, repeats: int, root: Path) -> dict[str, Any]:
    """The whole offline pipeline (as ``generate`` runs it): verified dialogues per CPU second, median
    of ``repeats``, and the tasks the template proposer built per proposal."""
    rates, walls, kept, builds = [], [], 0, []
    world = load_domain(domain)
    for r in range(repeats):
        config = GenerationConfig(domain=domain, n=n, seed=r, concurrency=64)
        builder = CountingBuilder(domain)
        cpu, wall = time.process_time(), time.perf_counter()
        paths = prepare_run(config, root / f"{domain}-{r}")
        phase1 = run_phase1(config, paths, proposer=TemplateProposer(world.database(), builder))
        run_phase2(config, paths)
        stats = compute_stats(domain, paths.root)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        kept = stats.phase2.dialogues
        rates.append(kept / cpu)
        walls.append(kept / wall)
        builds.append(builder.calls / phase1.proposals)
    what = f"whole pipeline, {domain} (n={n})"
    return {"what": what, "dialogues": kept, "rates": rates, "walls": walls, "builds": builds}


class ServerWatch:
    """Polls the server's ``/stats`` to find the steady phase (≥ 90 % of C calls in flight) and its rate."""

    def __init__(self, url: str, concurrency: int, period: float = 0.25):
        self.url = url.removesuffix("/v1") + "/stats"
        self.floor = 0.9 * concurrency
        self.period = period
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            with urllib.request.urlopen(self.url, timeout=5) as answer:  # noqa: S310 - loopback only
                data = json.load(answer)
            self.samples.append((time.perf_counter(), int(data["completed"]), int(data["in_flight"])))
            self._stop.wait(self.period)

    def __enter__(self) -> ServerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def steady_calls_per_second(self) -> float:
        """Completed calls per second over the longest run of samples with ≥ 90 % of C in flight."""
        best: list[tuple[float, int, int]] = []
        run: list[tuple[float, int, int]] = []
        for sample in self.samples:
            run = [*run, sample] if sample[2] >= self.floor else []
            if len(run) > len(best):
                best = run
        if len(best) < 2:
            return 0.0
        return (best[-1][1] - best[0][1]) / (best[-1][0] - best[0][0])

    def peak(self) -> int:
        return max((s[2] for s in self.samples), default=0)


def loopback(concurrency: int, per_worker: int, latency: float, root: Path) -> dict[str, Any]:
    """Phase 2 through the loopback server: end-to-end and steady dialogues per second vs the ideal."""
    tasks = unique_openings(accepted(int(concurrency * per_worker * 1.1), seed=2))[: concurrency * per_worker]
    folder = root / f"served-{concurrency}"
    write_task_split(tasks, folder, "accepted")
    args = ["--latency", str(latency), "--oracle-data-dir", str(folder), "--oracle-splits", "accepted"]
    process, url = start_server_process(args)
    try:
        agent = LLMSettings(model="oracle", base_url=url, api_key="x", max_connections=2 * concurrency)
        config = GenerationConfig(
            domain="retail", n=len(tasks), phase="2", agent=agent, concurrency=concurrency
        )
        paths = fresh_run(root, f"loopback-{concurrency}", tasks)
        with ServerWatch(url, concurrency) as watch:
            cpu, wall = time.process_time(), time.perf_counter()
            stats = run_phase2(config, paths)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        process.terminate()
        process.wait()
    records = read_records(paths.dialogues)
    calls = statistics.fmean(sum(m["role"] == "assistant" for m in r.messages) for r in records)
    ideal = concurrency / (latency * calls)
    steady = watch.steady_calls_per_second() / calls
    return {
        "C": concurrency,
        "L (s)": latency,
        "dialogues": f"{stats.dialogues}/{len(tasks)}",
        "LLM calls / dialogue": round(calls, 2),
        "wall (s)": round(wall, 1),
        "end to end /s": round(stats.dialogues / wall, 2),
        "steady /s": round(steady, 2),
        "ideal C/(L×calls) /s": round(ideal, 2),
        "steady / ideal": round(steady / ideal, 3),
        "end to end / ideal": round(stats.dialogues / wall / ideal, 3),
        "peak in flight": watch.peak(),
        "client CPU (s)": round(cpu, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500, help="accepted tasks for Phase 2 alone")
    parser.add_argument("--pipeline-n", type=int, default=200, help="n of the whole offline pipeline")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--per-worker", type=int, default=4, help="tasks per worker against the server")
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--domains", nargs="+", default=["retail", "airline", "travel"])
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = [offline_phase2(accepted(args.n), args.repeats, root)]
        results += [
            offline_pipeline(domain, args.pipeline_n, max(1, args.repeats - 2), root)
            for domain in args.domains
        ]
        rows = [
            (
                r["what"],
                r["dialogues"],
                round(statistics.median(r["rates"]), 1),
                f"{min(r['rates']):.1f}–{max(r['rates']):.1f}",
                round(statistics.median(r["walls"]), 1),
                f"{statistics.median(r['builds']):.2f}" if "builds" in r else "",
                "yes" if statistics.median(r["rates"]) >= TARGET else "NO",
            )
            for r in results
        ]
        headers = [
            "offline",
            "verified",
            "per CPU s (median)",
            "range",
            "per wall s",
            "sampler builds per proposal",
            f"≥ {TARGET:g}",
        ]
        print(tabulate(rows, headers=headers))
        if not args.skip_server:
            print()
            table = [loopback(c, args.per_worker, args.latency, root) for c in args.concurrency]
            print(tabulate([list(t.values()) for t in table], headers=list(table[0])))


if __name__ == "__main__":
    main()
