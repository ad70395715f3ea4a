"""Env speed of every domain: a tool step beside τ-bench's, building the database, and 1×–100× scale.

Steps: each domain's gold tool calls (reads and writes), each timed from the JSON call to the
observation and the transcript, from the same state, in the env and in a baseline, in interleaved
rounds. The baseline is τ-bench itself when a checkout is given with ``--tau-bench DIR`` (retail and
airline, on τ-bench's own data; τ-bench's LLM layer must be importable, its price-map download is
turned off), and otherwise, and for travel, a τ-bench-equivalent stand-in: the same step done with
this project's tool functions on plain dicts, outputs encoded by ``json.dumps`` as τ-bench's tools
encode theirs (see step_baselines.py). The table says which.

Loading: building the frozen Database from generated tables at each scale, time per record, beside
the same records frozen with the garbage collector running.

Scale: reset, a read step, each domain's heaviest search, a write step and the reward at 1×, 10× and
100× the default database (catalogues included), beside a naive strategy: a full deep copy of the
database on reset and a full-database canonical hash on reward (τ-bench also replays the gold
actions on a fresh copy on every reward; the naive column leaves that out, so it is a lower bound
for τ-bench). The task is the first one the domain's sampler builds with two or more writes;
"search step" is each domain's heaviest read: retail's user look-up by email (a scan in τ-bench),
airline's one-stop flight search (τ-bench's slowest read) and travel's flight search.

    python benchmarks/env_speed.py                                  # every section, every domain
    python benchmarks/env_speed.py --tau-bench ../tau-bench --sections steps
    python benchmarks/env_speed.py --sections scale --domains airline --scales 1 10 --repeats 3
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
from dataclasses import dataclass
from typing import Any

import step_baselines
from tabulate import tabulate

from apigen_gym.core.database import Database, Diff, freeze, thaw
from apigen_gym.core.domain import Domain, load_domain
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
        "next trip id µs": next_trip_id_us(database, repeats) if domain == "travel" else None,
    }


def next_trip_id_us(database: Database, repeats: int) -> float:
    """Travel's new-trip id in a fork that has booked one trip already (it was a scan of every trip)."""
    from apigen_gym.domains.travel.booking import next_trip_id

    fork = database.fork()
    fork.insert("trips", next_trip_id(fork), {"trip_id": "booked in this episode"})
    return median_us(lambda: next_trip_id(fork), 1000, repeats)


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


def scale_table(domains: list[str], scales: list[float], repeats: int) -> None:
    rows = [measure(domain, scale, repeats) for domain in domains for scale in scales]
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
    print(f"median of {repeats} runs; per domain, the sampler's first task with two or more writes\n")
    print(tabulate(table, headers=headers, tablefmt="github"))
    for row in rows:
        if row["next trip id µs"] is not None:
            print(f"travel next_trip_id at {row['scale']}: {row['next trip id µs']:.1f} µs")
    per_episode_kib, total_mib = memory_per_episode()
    print(f"\nmemory (retail): {per_episode_kib:.1f} KiB per live episode; ", end="")
    print(f"1,000 live episodes: {total_mib:.1f} MiB")


# --- a tool step beside τ-bench's --------------------------------------------------------------


@dataclass
class Call:
    """One gold tool call, with the task and position it is played from."""

    task: Task
    index: int
    text: str
    kind: ToolKind

    @property
    def name(self) -> str:
        return self.task.actions[self.index].name


def pick_calls(domain: Domain, tasks: list[Task], per_kind: int, per_tool: int) -> list[Call]:
    """Up to ``per_kind`` read and write calls of the tasks' gold actions, ``per_tool`` of each tool."""
    picked: list[Call] = []
    for task in tasks:
        for index, action in enumerate(task.actions):
            tool = domain.tools.get(action.name)
            if tool is None or tool.kind is ToolKind.TERMINAL:
                continue
            same_kind = [c for c in picked if c.kind is tool.kind]
            if len(same_kind) < per_kind and sum(c.name == action.name for c in same_kind) < per_tool:
                picked.append(Call(task, index, json.dumps(action.model_dump()), tool.kind))
    return picked


def _touched(before: Diff, after: Diff) -> set[tuple[str, str]]:
    keys = {(t, k) for diff in (before, after) for t, records in diff.items() for k in records}
    return {(t, k) for t, k in keys if before.get(t, {}).get(k) != after.get(t, {}).get(k)}


def compare_steps(
    domain: Domain, database: Database, tasks: list[Task], baseline: Any, calls: list[Call], rounds: int
) -> list[dict[str, Any]]:
    """Each call timed in the env and in ``baseline`` from the same state, in interleaved rounds."""
    env = ApigenEnv(domain, database=database, tasks=tasks, max_steps=10**9)
    rows = []
    for task in {c.task.id: c.task for c in calls}.values():  # warm up: validators, indexes
        env.reset(options={"task_id": task.id})
        for action in task.actions:
            env.step(json.dumps(action.model_dump()))
    for call in calls:
        prefix = [json.dumps(a.model_dump()) for a in call.task.actions[: call.index]]

        def ours_at_prefix(prefix: list[str] = prefix, task_id: str = call.task.id) -> None:
            env.reset(options={"task_id": task_id})
            for text in prefix:
                env.step(text)

        ours_at_prefix()
        for text in prefix:
            baseline.step(text)
        before = env.state_diff()
        ours_output = env.step(call.text)[0]
        theirs_output = baseline.step(call.text)
        touched = _touched(before, env.state_diff())
        # the state just before the call, to put back between repetitions of a write
        saved = {(t, k): thaw(before.get(t, {}).get(k, database.table(t).get(k))) for t, k in touched}
        changed = {(t, k) for diff in (before, env.state_diff()) for t in diff for k in diff[t]}
        ours, theirs = [], []
        for _ in range(rounds):
            if call.kind is ToolKind.READ:
                ours.append(_mean_us(env.step, call.text, 20))
                theirs.append(_mean_us(baseline.step, call.text, 20))
            else:
                for _ in range(3):
                    ours_at_prefix()
                    ours.append(_mean_us(env.step, call.text, 1))
                    baseline.put_back(saved)
                    theirs.append(_mean_us(baseline.step, call.text, 1))
        # back to the initial database for the next call
        baseline.put_back({(t, k): thaw(database.table(t).get(k)) for t, k in changed})
        rows.append(
            {
                "call": call,
                "ours": statistics.median(ours),
                "theirs": statistics.median(theirs),
                "same output": ours_output == theirs_output,
            }
        )
    return rows


def _mean_us(fn: Callable[[str], Any], text: str, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn(text)
    return (time.perf_counter() - start) / number * 1e6


def step_comparison(
    domains: list[str], tau_bench: str | None, per_kind: int, rounds: int
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Summary rows (domain, baseline, kind) and per-tool rows of the step comparison."""
    tau_module = step_baselines.load_tau_bench(tau_bench) if tau_bench else None
    summary, per_tool = [], []
    for name in domains:
        domain = load_domain(name)
        setups = []
        if tau_module is not None and name in step_baselines.TauBench.ENVS:
            tau = step_baselines.TauBench(name)
            tau_db = Database(tau.tables(), permanent=True)
            tau_tasks = tau.tasks()
            setups.append(("τ-bench's data", tau_db, tau_tasks, tau))
            setups.append(
                ("τ-bench's data", tau_db, tau_tasks, step_baselines.StandIn(domain, tau_db, tau_tasks[0]))
            )
        else:
            database, tasks = domain.database(), domain.tasks("test")
            setups.append(("shipped", database, tasks, step_baselines.StandIn(domain, database, tasks[0])))
        for data, database, tasks, baseline in setups:
            calls = pick_calls(domain, tasks, per_kind, per_tool=max(3, per_kind // 4))
            rows = compare_steps(domain, database, tasks, baseline, calls, rounds)
            for kind in (ToolKind.READ, ToolKind.WRITE):
                mine = [r for r in rows if r["call"].kind is kind]
                ours, theirs = sum(r["ours"] for r in mine), sum(r["theirs"] for r in mine)
                summary.append(
                    [
                        name,
                        f"{baseline.label} ({data})",
                        kind.value,
                        len(mine),
                        len({r["call"].name for r in mine}),
                        f"{ours / len(mine):.1f}",
                        f"{theirs / len(mine):.1f}",
                        f"{theirs / ours:.2f}×",
                        f"{sum(r['ours'] <= r['theirs'] for r in mine)}/{len(mine)}",
                        f"{sum(r['same output'] for r in mine)}/{len(mine)}",
                    ]
                )
            for tool_name in sorted({r["call"].name for r in rows}):
                mine = [r for r in rows if r["call"].name == tool_name]
                ours = statistics.mean(r["ours"] for r in mine)
                theirs = statistics.mean(r["theirs"] for r in mine)
                per_tool.append(
                    [
                        name,
                        baseline.label,
                        tool_name,
                        mine[0]["call"].kind.value,
                        len(mine),
                        f"{ours:.1f}",
                        f"{theirs:.1f}",
                        f"{theirs / ours:.2f}×",
                    ]
                )
    return summary, per_tool


# --- loading ----------------------------------------------------------------------------------


def _freeze_tables(tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The records frozen one by one, as building cost before: the collector left running."""
    return {name: {key: freeze(record) for key, record in table.items()} for name, table in tables.items()}


def _build_seconds(build: Callable[[Any], Any], tables: dict[str, dict[str, Any]]) -> float:
    gc.collect()
    start = time.perf_counter()
    built = build(tables)
    seconds = time.perf_counter() - start
    del built
    gc.collect()
    return seconds


def loading(domains: list[str], scales: list[float], repeats: int) -> list[list[Any]]:
    """Building the frozen Database at each scale, beside the same freeze with the collector running
    (what building cost before); medians of ``repeats`` runs (one at 100× and above)."""
    rows = []
    for name in domains:
        generator = importlib.import_module(f"apigen_gym.domains.{name}.generator")
        for scale in scales:
            tables = generator.generate(scale=scale)
            records = sum(len(t) for t in tables.values())
            runs = repeats if scale < 100 else 1
            naive, ours = [], []
            for _ in range(runs):  # interleaved
                naive.append(_build_seconds(_freeze_tables, tables))
                ours.append(_build_seconds(Database, tables))
            naive_s, ours_s = statistics.median(naive), statistics.median(ours)
            rows.append(
                [
                    name,
                    f"{scale:g}×",
                    records,
                    f"{ours_s:.3f}",
                    f"{ours_s / records * 1e6:.1f}",
                    f"{naive_s:.3f}",
                    f"{naive_s / records * 1e6:.1f}",
                ]
            )
            del tables
            gc.collect()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sections", nargs="+", default=["steps", "load", "scale"], choices=["steps", "load", "scale"]
    )
    parser.add_argument("--domains", nargs="+", default=["retail", "airline", "travel"])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tau-bench", metavar="DIR", help="a τ-bench checkout (outside this repository)")
    parser.add_argument("--calls", type=int, default=40, help="read and write calls per domain (each)")
    args = parser.parse_args()
    if "steps" in args.sections:
        summary, per_tool = step_comparison(args.domains, args.tau_bench, args.calls, args.repeats)
        print(
            f"tool step, from the JSON call to the observation; median of {args.repeats} interleaved rounds\n"
        )
        headers = [
            "domain",
            "baseline",
            "kind",
            "calls",
            "tools",
            "ours µs",
            "baseline µs",
            "ours faster by",
            "calls ours ≤ baseline",
            "same output",
        ]
        print(tabulate(summary, headers=headers, tablefmt="github"))
        print()
        headers = ["domain", "baseline", "tool", "kind", "calls", "ours µs", "baseline µs", "ours faster by"]
        print(tabulate(per_tool, headers=headers, tablefmt="github"))
        print()
    if "load" in args.sections:
        rows = loading(args.domains, args.scales, args.repeats)
        headers = [
            "domain",
            "db size",
            "records",
            "build s",
            "µs per record",
            "collector running s",
            "µs per record (collector running)",
        ]
        print(
            f"building the frozen Database from generated tables (median of {args.repeats} runs below 100×)\n"
        )
        print(tabulate(rows, headers=headers, tablefmt="github"))
        print()
    if "scale" in args.sections:
        scale_table(args.domains, args.scales, args.repeats)


if __name__ == "__main__":
    main()
