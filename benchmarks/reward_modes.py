"""The end-of-episode reward in ``partial`` mode beside ``binary`` (τ-bench's), in the same run.

Both time the whole end-of-episode reward (gold look-up, policy check, outputs, state) on the same
episodes of each domain's benchmark task (the first sampled task with two or more writes, as in
env_speed.py) at 1× and 10× the default database: the gold end state, a half-done state (the gold
calls up to the first write only), and the gold state plus a stray write. The modes take turns, so
a change of load on the machine hits both. Each compares diffs only: neither grows with the database.

    python benchmarks/reward_modes.py
    python benchmarks/reward_modes.py --domains retail --scales 1 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
from typing import Any

from env_speed import bench_task, median_us
from tabulate import tabulate

from apigen_gym.core.database import Database
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.tools import ToolKind

STATES = ("gold", "half done", "gold + stray write")


def stray_write(env: ApigenEnv) -> str:
    """A write on a record the task does not touch: a user's address, a passenger's name, points."""
    users = list(env.database.table("users"))
    domain = env.domain.name
    if domain == "retail":
        arguments = {
            "user_id": users[-1],
            "address1": "1 Stray St",
            "address2": "",
            "city": "Nowhere",
            "state": "NY",
            "country": "USA",
            "zip": "00000",
        }
        return json.dumps({"name": "modify_user_address", "arguments": arguments})
    if domain == "airline":
        reservation = next(iter(env.database.table("reservations").values()))
        passengers = [dict(p, first_name="Stray") for p in reservation["passengers"]]
        arguments = {"reservation_id": reservation["reservation_id"], "passengers": passengers}
        return json.dumps({"name": "update_reservation_passengers", "arguments": arguments})
    return json.dumps({"name": "redeem_points", "arguments": {"user_id": users[-1], "points": 1000}})


def measure(domain: str, scale: float, repeats: int) -> list[dict[str, Any]]:
    generator = importlib.import_module(f"apigen_gym.domains.{domain}.generator")
    database = Database(generator.generate(scale=scale))
    task = bench_task(domain, database)
    env = ApigenEnv(domain, database=database, tasks=[task], max_steps=10**6)
    calls = [json.dumps(a.model_dump()) for a in task.actions]
    first_write = next(
        i for i, a in enumerate(task.actions) if env.domain.tools[a.name].kind is ToolKind.WRITE
    )
    plays = {
        "gold": calls,
        "half done": calls[: first_write + 1],
        "gold + stray write": [*calls, stray_write(env)],
    }
    rows = []
    for state, play in plays.items():
        env.reset(options={"task_id": task.id})
        for call in play:
            env.step(call)
        runs: dict[str, list[float]] = {"binary": [], "partial": []}
        for _ in range(repeats):  # the modes take turns, so a load swing on the machine hits both
            for mode, times in runs.items():
                env.reward_mode = mode  # type: ignore[assignment]
                env.compute_reward()  # the first call caches the gold diff (and, partial, its units)
                times.append(median_us(env.compute_reward, 300, 1))
        timings = {mode: statistics.median(times) for mode, times in runs.items()}
        rows.append(
            {
                "domain": domain,
                "db size": f"{scale:g}×",
                "episode state": state,
                "binary µs": timings["binary"],
                "partial µs": timings["partial"],
                "partial / binary": timings["partial"] / timings["binary"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", nargs="+", default=["retail", "airline", "travel"])
    parser.add_argument("--scales", nargs="+", type=float, default=[1, 10])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [row for d in args.domains for s in args.scales for row in measure(d, s, args.repeats)]
    table = [
        {
            **row,
            **{k: f"{row[k]:.1f}" for k in ("binary µs", "partial µs")},
            "partial / binary": f"{row['partial / binary']:.2f}",
        }
        for row in rows
    ]
    print(tabulate(table, headers="keys"))


if __name__ == "__main__":
    main()
