"""Env speed at 1×, 10× and 100× the default retail database, beside a naive strategy.

Ours: copy-on-write fork on reset, diff against a cached gold diff on reward, indexed look-ups.
Naive (measured in the same run): a full deep copy of the database on reset and a full-database
canonical hash on reward (τ-bench also replays the gold actions on a fresh copy on every reward;
the naive column leaves that out, so it is a lower bound for τ-bench).

    python benchmarks/env_speed.py                 # scales 1 10 100, 5 repeats
    python benchmarks/env_speed.py --scales 1 10 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from tabulate import tabulate

from apigen_gym import jsonio
from apigen_gym.database import Database
from apigen_gym.domain import load_domain
from apigen_gym.domains.retail.generator import generate
from apigen_gym.env import ApigenEnv
from apigen_gym.session import Session
from apigen_gym.task import Action, Goal, Request, Task


def bench_task(database: Database) -> Task:
    """A three-write task on the first user with two pending orders: cancel one, re-address the other."""
    pending: dict[str, list[str]] = {}
    for order_id, order in database.table("orders").items():
        if order["status"] == "pending":
            pending.setdefault(order["user_id"], []).append(order_id)
    user_id, (first, second, *_) = next((u, o) for u, o in pending.items() if len(o) >= 2)
    user = database.table("users")[user_id]
    address = {"address1": "1 Bench Way", "address2": "", "city": "Austin", "state": "TX", "country": "USA"}
    actions = [
        Action(name="find_user_id_by_email", arguments={"email": user["email"]}),
        Action(name="get_user_details", arguments={"user_id": user_id}),
        Action(name="get_order_details", arguments={"order_id": first}),
        Action(name="cancel_pending_order", arguments={"order_id": first, "reason": "no longer needed"}),
        Action(name="get_order_details", arguments={"order_id": second}),
        Action(
            name="modify_pending_order_address", arguments={"order_id": second, **address, "zip": "73301"}
        ),
        Action(name="modify_user_address", arguments={"user_id": user_id, **address, "zip": "73301"}),
    ]
    goal = Goal(
        known={"email": user["email"]}, requests=[Request(text="bench", actions=list(range(len(actions))))]
    )
    return Task(id="bench", user_id=user_id, instruction="bench", goal=goal, actions=actions)


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


def measure(scale: float, repeats: int) -> dict[str, Any]:
    tables = generate(scale=scale)
    started = time.perf_counter()
    database = Database(tables)
    load_seconds = time.perf_counter() - started
    task = bench_task(database)
    env = ApigenEnv("retail", database=database, tasks=[task], max_steps=10**6)
    calls = [json.dumps(a.model_dump()) for a in task.actions]

    def reset() -> None:
        env.reset(options={"task_id": task.id})

    def play_gold() -> None:
        reset()
        for call in calls:
            env.step(call)

    play_gold()  # warm up: first calls build indexes and pydantic validators
    reset()
    read_us = median_us(lambda: env.step(calls[2]), 200, repeats)
    find_us = median_us(lambda: env.step(calls[0]), 200, repeats)
    write_us = median_us(lambda: env.step(calls[3]), 50, repeats, setup=reset)
    play_gold()
    env.compute_reward()  # the first call computes and caches the gold diff
    reward_us = median_us(env.compute_reward, 200, repeats)
    assert env.compute_reward().reward == 1.0
    reset_us = median_us(reset, 500, repeats)

    naive_n = max(1, int(20 / scale))
    naive_reset_us = median_us(lambda: copy.deepcopy(tables), naive_n, repeats)
    naive_reward_us = median_us(lambda: jsonio.digest(tables), naive_n, repeats)
    return {
        "scale": f"{scale:g}×",
        "records": database.size(),
        "load s": round(load_seconds, 2),
        "reset µs": reset_us,
        "naive reset µs": naive_reset_us,
        "read step µs": read_us,
        "find-user step µs": find_us,
        "write step µs": write_us,
        "reward µs": reward_us,
        "naive reward µs": naive_reward_us,
    }


def memory_per_episode(episodes: int = 1000) -> tuple[float, float]:
    """KiB per live episode (a session that played a 3-write task), and MiB for ``episodes`` of them."""
    domain = load_domain("retail")
    database = domain.database()
    task = bench_task(database)
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
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [measure(scale, args.repeats) for scale in args.scales]
    table = []
    for row in rows:
        table.append(
            [
                row["scale"],
                row["records"],
                f"{row['reset µs']:.1f}",
                f"{row['naive reset µs']:,.0f}",
                f"{row['naive reset µs'] / row['reset µs']:,.0f}×",
                f"{row['read step µs']:.1f}",
                f"{row['find-user step µs']:.1f}",
                f"{row['write step µs']:.1f}",
                f"{row['reward µs']:.1f}",
                f"{row['naive reward µs']:,.0f}",
                f"{row['naive reward µs'] / row['reward µs']:,.0f}×",
            ]
        )
    headers = [
        "db size",
        "records",
        "reset µs",
        "naive reset µs",
        "speed-up",
        "read step µs",
        "find-user step µs",
        "write step µs",
        "reward µs",
        "naive reward µs",
        "speed-up",
    ]
    print(f"median of {args.repeats} runs; retail, a 7-action task with 3 writes\n")
    print(tabulate(table, headers=headers, tablefmt="github"))
    per_episode_kib, total_mib = memory_per_episode()
    print(f"\nmemory: {per_episode_kib:.1f} KiB per live episode; 1,000 live episodes: {total_mib:.1f} MiB")


if __name__ == "__main__":
    main()
