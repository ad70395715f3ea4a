"""Env speed of every domain at 1×, 10× and 100× its default database, beside a naive strategy.

Ours: copy-on-write fork on reset, diff against a cached gold diff on reward, indexed look-ups.
Naive (measured in the same run): a full deep copy of the database on reset and a full-database
canonical hash on reward (τ-bench also replays the gold actions on a fresh copy on every reward;
the naive column leaves that out, so it is a lower bound for τ-bench).

The task is the first one the domain's sampler builds with two or more writes; "search step" is
each domain's heaviest read: retail's user look-up by email (a scan in τ-bench), airline's one-stop
flight search (τ-bench's slowest read) and travel's flight search.

    python benchmarks/env_speed.py                                  # all domains, scales 1 10 100
    python benchmarks/env_speed.py --domains airline --scales 1 10 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import json
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from tabulate import tabulate

from apigen_gym.core.database import Database
from apigen_gym.core.domain import load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.session import Session
from apigen_gym.core.task import Task
from apigen_gym.core.tools import ToolKind
from apigen_gym.util import jsonio


def bench_task(domain: str, database: Database) -> Task:
    """The first task the domain's sampler builds on ``database`` with two or more writes (no outputs)."""
    sampler = importlib.import_module(f"apigen_gym.domains.{domain}.sampler")
    writes = {t.name for t in load_domain(domain).tools.of_kind(ToolKind.WRITE)}
    rng = random.Random(0)
    users = sorted(database.table("users"))
    for _ in range(500):
        task = sampler.build_task(database, rng, rng.choice(users))
        if task is not None and not task.outputs and sum(a.name in writes for a in task.actions) >= 2:
            return task.model_copy(update={"id": "bench"})
    raise RuntimeError(f"no {domain} task with two writes")


def search_call(domain: str, database: Database, task: Task) -> str:
    """The domain's heaviest read, as a JSON tool call valid on ``database``."""
    if domain == "retail":
        action = next(a for a in task.actions if a.name.startswith("find_user_id"))
        return json.dumps(action.model_dump())
    flights = list(database.table("flights").values())
    first = flights[0]
    date = next(d for d in first["dates"] if d >= ("2024-05-16" if domain == "airline" else "2025-03-11"))
    if domain == "airline":
        onward = next(f for f in flights if f["origin"] == first["destination"])
        arguments = {"origin": first["origin"], "destination": onward["destination"], "date": date}
        return json.dumps({"name": "search_onestop_flight", "arguments": arguments})
    arguments = {"origin": first["origin"], "destination": first["destination"], "date": date}
    return json.dumps({"name": "search_flights", "arguments": arguments})


def median_us(
    fn: Callable[[], Any], number: int, repeats: int, setup: Callable[[], Any] | None = None
) -> float:
    """Median over ``repeats`` runs of the mean time of ``number`` calls, in microseconds."""
    runs = []
    for _ in range(repeats):
        total = 0.0
        for _ in range(number):
            if setup is not None:
                setup()
            start = time.perf_counter()
            fn()
            total += time.perf_counter() - start
        runs.append(total / number * 1e6)
    return statistics.median(runs)


def measure(domain: str, scale: float, repeats: int) -> dict[str, Any]:
    generator = importlib.import_module(f"apigen_gym.domains.{domain}.generator")
    tables = generator.generate(scale=scale)
    started = time.perf_counter()
    database = Database(tables)
    load_seconds = time.perf_counter() - started
    task = bench_task(domain, database)
    env = ApigenEnv(domain, database=database, tasks=[task], max_steps=10**6)
    calls = [json.dumps(a.model_dump()) for a in task.actions]
    first_write = next(
        i for i, a in enumerate(task.actions) if env.domain.tools[a.name].kind is ToolKind.WRITE
    )
    search = search_call(domain, database, task)

    def reset() -> None:
        env.reset(options={"task_id": task.id})

    def play_until_write() -> None:
        reset()
        for call in calls[:first_write]:
            env.step(call)

    def play_gold() -> None:
        reset()
        for call in calls:
            env.step(call)

    play_gold()  # warm up: first calls build indexes and pydantic validators
    reset()
    read_us = median_us(lambda: env.step(calls[1]), 200, repeats)
    search_us = median_us(lambda: env.step(search), 100, repeats)
    write_us = median_us(lambda: env.step(calls[first_write]), 30, repeats, setup=play_until_write)
    play_gold()
    env.compute_reward()  # the first call computes and caches the gold diff
    reward_us = median_us(env.compute_reward, 200, repeats)
    assert env.compute_reward().reward == 1.0
    reset_us = median_us(reset, 500, repeats)

    naive_n = max(1, int(20 / scale))
    naive_reset_us = median_us(lambda: copy.deepcopy(tables), naive_n, repeats)
    naive_reward_us = median_us(lambda: jsonio.digest(tables), naive_n, repeats)
    return {
        "domain": domain,
        "scale": f"{scale:g}×",
        "records": database.size(),
        "load s": round(load_seconds, 2),
        "reset µs": reset_us,
        "naive reset µs": naive_reset_us,
        "read step µs": read_us,
        "search step µs": search_us,
        "write step µs": write_us,
        "reward µs": reward_us,
        "naive reward µs": naive_reward_us,
    }


def memory_per_episode(episodes: int = 1000) -> tuple[float, float]:
    """KiB per live episode (a session that played a 3-write task), and MiB for ``episodes`` of them."""
    domain = load_domain("retail")
    database = domain.database()
    task = bench_task("retail", database)
    gc.collect()
    tracemalloc.start()
    live = []
    for _ in range(episodes):
        session = Session(domain.tools, database, messages=[])
        for action in task.actions:
            session.call(action.name, action.arguments)
        live.append(session)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / episodes / 1024, current / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", nargs="+", default=["retail", "airline", "travel"])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [measure(domain, scale, args.repeats) for domain in args.domains for scale in args.scales]
    table = [
        [
            row["domain"],
            row["scale"],
            row["records"],
            f"{row['reset µs']:.1f}",
            f"{row['naive reset µs']:,.0f}",
            f"{row['read step µs']:.1f}",
            f"{row['search step µs']:.1f}",
            f"{row['write step µs']:.1f}",
            f"{row['reward µs']:.1f}",
            f"{row['naive reward µs']:,.0f}",
            f"{row['naive reward µs'] / row['reward µs']:,.0f}×",
        ]
        for row in rows
    ]
    headers = [
        "domain",
        "db size",
        "records",
        "reset µs",
        "naive reset µs",
        "read step µs",
        "search step µs",
        "write step µs",
        "reward µs",
        "naive reward µs",
        "reward speed-up",
    ]
    print(f"median of {args.repeats} runs; per domain, the sampler's first task with two or more writes\n")
    print(tabulate(table, headers=headers, tablefmt="github"))
    per_episode_kib, total_mib = memory_per_episode()
    print(f"\nmemory (retail): {per_episode_kib:.1f} KiB per live episode; ", end="")
    print(f"1,000 live episodes: {total_mib:.1f} MiB")


if __name__ == "__main__":
    main()
