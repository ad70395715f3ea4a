"""Evaluation-harness throughput and CPU per LLM call, beside a plain ``openai`` ``create`` loop.

The loopback server runs in a subprocess (its CPU is not counted) and answers every request after
``L`` seconds. For each concurrency ``C`` the real harness (:func:`apigen_gym.evaluation.run_async`,
``ToolCallingAgent`` on ``LLMClient``, scripted user, the retail test split, model ``oracle``) keeps
``C`` episodes in flight, once with the LLM layer's default aiohttp transport and once with
``transport="openai"`` (requests through the client's own stack); the ideal throughput is ``C / L``
calls per second. In the same run, a plain ``AsyncOpenAI().chat.completions.create`` loop with ``C``
calls in flight sends a mid-episode retail conversation with the retail tools for as long as the
harness's measured window.

Measured in a steady-state window (from 1.5 latency periods after the start until the last episode has
started, so all ``C`` slots are busy throughout): calls per second (each in-flight slot's timeline is
cut into call cycles and the cycles overlapping the window are counted fractionally, so lock-step bursts
of answers at the window's edges do not skew it), and the harness process's CPU (user + sys, from
``getrusage``) per call. Then the memory of 1,000 live mid-conversation episodes, and where the CPU per
call goes: the same request sent through fewer and fewer layers against a latency-0 server (typed
``create``; ``client.post`` with a typed, then a raw response; bare aiohttp), unprofiled, so each
difference is one layer's cost (``--profile N`` adds the top N cProfile entries of the harness).

    python benchmarks/harness.py                       # C = 16 64 256 512 at L = 1 s (a few minutes)
    python benchmarks/harness.py --quick               # C = 16 64 at L = 0.2 s
    python benchmarks/harness.py --concurrency 64 --latency 0.5 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import math
import os
import pstats
import resource
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import openai
from openai.types.chat import ChatCompletion
from tabulate import tabulate

from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.task import Task
from apigen_gym.evaluation.runner import read_results, run_async
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings, Transport
from apigen_gym.llm.types import Completion
from apigen_gym.loopback.server import start_server_process
from apigen_gym.players.model_agents import ToolCallingAgent
from apigen_gym.players.oracle import OracleAgent, Say, plan_oracle_moves

try:  # the HTTP library the installed openai is built on (as in apigen_gym.llm)
    import httpx2 as http
except ImportError:
    import httpx as http  # type: ignore[no-redef]

DOMAIN = "retail"
WARMUP_PERIODS = 1.5
"""Latency periods skipped at the start: connection set-up and the first burst of answers."""
MEMORY_EPISODES = 1000
MEMORY_ACTIONS = 6
PROFILE_CONCURRENCY = 16
TRANSPORTS: tuple[Transport, ...] = ("aiohttp", "openai")


@dataclass(frozen=True)
class BreakdownSize:
    """How much the latency-0 breakdown runs: rounds of each path, calls per round, harness episodes."""

    rounds: int = 5
    calls: int = 200
    episodes: int = 40


QUICK_BREAKDOWN = BreakdownSize(rounds=2, calls=80, episodes=20)


# --- measuring ------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU of this process so far (the server subprocess is not included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of another process (Linux ``/proc``), or None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc``; else the peak from ``getrusage``)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True)
class Snapshot:
    wall: float
    cpu: float
    server_cpu: float | None
    calls: int


def snapshot(calls: int, server_pid: int) -> Snapshot:
    return Snapshot(time.perf_counter(), cpu_seconds(), process_cpu_seconds(server_pid), calls)


def tiled_calls(timelines: Iterable[Sequence[float]], start: float, end: float) -> float:
    """Calls in ``[start, end]``, counting each call cycle by the share of it inside the window.

    A timeline is one in-flight slot: its start, then the moment each of its calls completed; the
    slot is busy throughout, so its cycles tile it and the shares add up to window / mean cycle.
    """
    total = 0.0
    for line in timelines:
        for begin, finish in zip(line, line[1:]):
            if finish > begin:
                overlap = min(finish, end) - max(begin, start)
                if overlap > 0:
                    total += overlap / (finish - begin)
    return total


@dataclass
class Window:
    """A steady-state measurement: calls per second, CPU per call, the server's CPU per call."""

    seconds: float
    calls_per_s: float
    cpu_ms_per_call: float
    server_ms_per_call: float | None
    errors: int = 0


def window_of(first: Snapshot, last: Snapshot, timelines: Iterable[Sequence[float]], errors: int) -> Window:
    seconds = last.wall - first.wall
    calls = max(1, last.calls - first.calls)
    server = None
    if first.server_cpu is not None and last.server_cpu is not None:
        server = (last.server_cpu - first.server_cpu) / calls * 1e3
    return Window(
        seconds=seconds,
        calls_per_s=tiled_calls(timelines, first.wall, last.wall) / seconds,
        cpu_ms_per_call=(last.cpu - first.cpu) / calls * 1e3,
        server_ms_per_call=server,
        errors=errors,
    )


# --- the workload ---------------------------------------------------------------------------------


def oracle_steps(env: ApigenEnv, task: Task) -> int:
    """Agent steps of ``task`` played by the in-process oracle (as the server's ``oracle`` plays it)."""
    observation, info = env.reset(options={"task_id": task.id})
    agent = OracleAgent(env.domain.tools)
    agent.reset(info, env.task, env)
    steps, done = 0, False
    while not done:
        observation, _, terminated, truncated, _ = env.step(agent.act(observation))
        steps, done = steps + 1, terminated or truncated
    return steps


def mid_conversation(env: ApigenEnv, task: Task, actions: int) -> tuple[str, list[dict[str, Any]]]:
    """Reset ``env`` on ``task`` and let the oracle play up to ``actions`` actions; the conversation."""
    observation, info = env.reset(options={"task_id": task.id})
    agent = OracleAgent(env.domain.tools)
    agent.reset(info, env.task, env)
    for _ in range(actions):
        observation, _, terminated, truncated, _ = env.step(agent.act(observation))
        if terminated or truncated:
            break
    return observation, env.messages


def baseline_request(env: ApigenEnv) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The plain loop's request: a conversation after the oracle's first actions, the domain's tools.

    The task is one whose next oracle move is a tool call, so the answer is a realistic tool call.
    """
    for task in env.tasks:
        moves = plan_oracle_moves(task, env.domain.tools)
        if len(moves) > MEMORY_ACTIONS + 1 and not isinstance(moves[MEMORY_ACTIONS], Say):
            _, messages = mid_conversation(env, task, MEMORY_ACTIONS)
            return [dict(m) for m in messages], env.tools
    _, messages = mid_conversation(env, env.tasks[0], MEMORY_ACTIONS)
    return [dict(m) for m in messages], env.tools


def plan_episodes(
    ids: Sequence[str],
    steps: Mapping[str, int],
    concurrency: int,
    window_periods: float,
    episodes: int | None,
) -> tuple[list[str], int]:
    """Task ids and trials giving enough episodes to keep every slot busy past the window's end.

    The last episode starts after about (episodes - C) / C episode lengths; that must cover the
    warm-up and the window, with a 10 % margin.
    """
    if episodes is None:
        periods = WARMUP_PERIODS + window_periods
        pool = list(ids)
        for _ in range(2):  # the mean episode length of the tasks actually used
            mean_steps = sum(steps[i] for i in pool) / len(pool)
            episodes = max(2 * concurrency, concurrency + math.ceil(1.1 * concurrency * periods / mean_steps))
            pool = list(ids[:episodes]) if episodes < len(ids) else list(ids)
    assert episodes is not None
    trials = math.ceil(episodes / len(ids))
    return list(ids[: math.ceil(episodes / trials)]), trials


# --- the harness ----------------------------------------------------------------------------------


class TimedClient(LLMClient):
    """An :class:`LLMClient` that notes when each call of each in-flight slot (asyncio task) completed."""

    def __init__(self, settings: LLMSettings):
        super().__init__(settings)
        self.origin = time.perf_counter()
        self.timelines: dict[int, list[float]] = {}

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> Completion:
        completion = await super().complete(messages, tools, **params)
        slot = id(asyncio.current_task())
        self.timelines.setdefault(slot, [self.origin]).append(time.perf_counter())
        return completion


@dataclass
class HarnessRun:
    window: Window
    episodes: int
    finished: int
    episodes_per_s: float
    mean_reward: float
    episode_errors: int
    steady: bool


async def settle(
    run: asyncio.Task[Any],
    client: TimedClient,
    marks: Mapping[str, Snapshot],
    ended: asyncio.Event,
    wait: float,
) -> None:
    """Return once every slot has completed a call after the window's end (or the run is over).

    The cycles straddling the window's end must be complete to be counted; after that the rest of
    the run (the tail, with fewer than C episodes in flight) is not needed. Nothing polls before the
    window ends, so the wait costs the measured process nothing.
    """
    deadline = time.perf_counter() + wait
    window_end = asyncio.ensure_future(ended.wait())
    await asyncio.wait({run, window_end}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    window_end.cancel()
    end = marks.get("end")
    while not run.done() and end is not None and time.perf_counter() < deadline:
        if all(line[-1] > end.wall for line in client.timelines.values()):
            return
        await asyncio.sleep(0.02)


async def measure_harness(
    url: str,
    server_pid: int,
    concurrency: int,
    latency: float,
    ids: Sequence[str],
    trials: int,
    max_steps: int,
    steps: Mapping[str, int],
    transport: Transport = "aiohttp",
) -> HarnessRun:
    """Run the real harness on ``ids`` × ``trials`` with ``concurrency`` episodes in flight.

    The run is stopped once the window is measured; the reward is that of the finished episodes,
    and episodes per second are calls per second over the planned episodes' mean oracle length.
    """
    settings = LLMSettings(
        model="oracle",
        base_url=url,
        api_key="loopback",
        max_connections=2 * concurrency,
        transport=transport,
    )
    client = TimedClient(settings)
    total = len(ids) * trials
    started = 0
    marks: dict[str, Snapshot] = {}
    ended = asyncio.Event()

    def make_env() -> ApigenEnv:
        nonlocal started
        started += 1
        if started == total:  # the last episode starts: from here on fewer than C are in flight
            marks["end"] = snapshot(client.calls, server_pid)
            ended.set()
        return ApigenEnv(DOMAIN, max_steps=max_steps)

    async def mark_start() -> None:
        await asyncio.sleep(WARMUP_PERIODS * latency)
        marks["start"] = snapshot(client.calls, server_pid)

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as out_dir:
        client.origin = time.perf_counter()
        first = snapshot(client.calls, server_pid)
        timer = asyncio.create_task(mark_start())
        run = asyncio.create_task(
            run_async(make_env, lambda: ToolCallingAgent(client), out_dir, ids, trials, concurrency)
        )
        try:
            await settle(run, client, marks, ended, wait=WARMUP_PERIODS * latency + 10 * latency + 60)
            last = snapshot(client.calls, server_pid)
            if run.done():
                run.result()  # a failed run raises here
        finally:
            timer.cancel()
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
            await client.aclose()
        results = read_results(out_dir)
    steady = "start" in marks and "end" in marks and marks["end"].wall > marks["start"].wall
    begin, end = (marks["start"], marks["end"]) if steady else (first, last)
    window = window_of(begin, end, client.timelines.values(), 0)
    planned_steps = sum(steps[i] for i in ids) / len(ids)
    return HarnessRun(
        window=window,
        episodes=total,
        finished=len(results),
        episodes_per_s=window.calls_per_s / planned_steps,
        mean_reward=sum(r.reward for r in results) / max(1, len(results)),
        episode_errors=sum(r.error is not None for r in results),
        steady=steady,
    )


# --- the plain openai loop ------------------------------------------------------------------------


def plain_client(url: str, transport: str) -> openai.AsyncOpenAI:
    """``AsyncOpenAI`` as a user would make it: its default HTTP client, or ``DefaultAioHttpClient``."""
    http_client = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    return openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, http_client=http_client)


async def plain_call(
    client: openai.AsyncOpenAI, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> None:
    await client.chat.completions.create(model="oracle", messages=cast(Any, messages), tools=cast(Any, tools))


async def measure_plain(
    url: str,
    server_pid: int,
    concurrency: int,
    latency: float,
    seconds: float,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    transport: str = "default",
) -> Window:
    """``concurrency`` coroutines calling ``chat.completions.create`` back to back for the window."""
    client = plain_client(url, transport)
    calls = errors = 0
    marks: dict[str, Snapshot] = {}
    origin = time.perf_counter()
    timelines = [[origin] for _ in range(concurrency)]
    finish = origin + WARMUP_PERIODS * latency + seconds

    async def worker(line: list[float]) -> None:
        nonlocal calls, errors
        while True:
            try:
                await plain_call(client, messages, tools)
            except openai.APIError:
                errors += 1
            now = time.perf_counter()
            calls += 1
            line.append(now)
            if now >= finish:  # the call in flight when the window closed has completed
                return

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        marks[name] = snapshot(calls, server_pid)

    try:
        await asyncio.gather(
            mark("start", origin + WARMUP_PERIODS * latency),
            mark("end", finish),
            *(worker(line) for line in timelines),
        )
    finally:
        await client.close()
    return window_of(marks["start"], marks["end"], timelines, errors)


# --- memory ---------------------------------------------------------------------------------------


def live_episodes(tasks: Sequence[Task], count: int, max_steps: int) -> list[tuple[ApigenEnv, OracleAgent]]:
    """``count`` envs, each reset on a task and mid-conversation after the oracle's first actions."""
    live = []
    for number in range(count):
        env = ApigenEnv(DOMAIN, max_steps=max_steps)
        task = tasks[number % len(tasks)]
        observation, info = env.reset(seed=number, options={"task_id": task.id})
        agent = OracleAgent(env.domain.tools)
        agent.reset(info, env.task, env)
        for _ in range(MEMORY_ACTIONS):
            observation, _, terminated, truncated, _ = env.step(agent.act(observation))
            if terminated or truncated:
                break
        live.append((env, agent))
    return live


def measure_memory(tasks: Sequence[Task], count: int, max_steps: int) -> tuple[float, float, float, float]:
    """(tracemalloc MiB, KiB per episode, RSS growth MiB, KiB per episode) of ``count`` live episodes."""
    live_episodes(tasks, 10, max_steps)  # warm caches (gold diffs, validators) before measuring
    gc.collect()
    rss_before = rss_bytes()
    live = live_episodes(tasks, count, max_steps)
    rss_growth = rss_bytes() - rss_before
    del live
    gc.collect()
    tracemalloc.start()
    live = live_episodes(tasks, count, max_steps)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del live
    gc.collect()
    return traced / 2**20, traced / count / 1024, rss_growth / 2**20, rss_growth / count / 1024


# --- where the CPU goes ---------------------------------------------------------------------------

Batch = Callable[[], Awaitable[int]]
"""Runs a batch of calls and returns how many LLM calls it made."""


def burst(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> Batch:
    """A batch of ``calls`` calls with ``concurrency`` in flight."""

    async def run() -> int:
        remaining = calls

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await call()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return calls

    return run


async def interleaved_costs(batches: Mapping[str, Batch], rounds: int) -> dict[str, float]:
    """Median CPU µs per call of each batch, the batches taking turns so that noise hits all alike."""
    for batch in batches.values():
        await batch()  # warm-up: connections, caches
    runs: dict[str, list[float]] = {name: [] for name in batches}
    for _ in range(rounds):
        for name, batch in batches.items():
            cpu = cpu_seconds()
            calls = await batch()
            runs[name].append((cpu_seconds() - cpu) / calls * 1e6)
    return {name: statistics.median(values) for name, values in runs.items()}


async def layer_costs(
    url: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    ids: Sequence[str],
    max_steps: int,
    profile: cProfile.Profile | None,
    size: BreakdownSize,
) -> dict[str, float]:
    """CPU µs per call of one request sent through fewer and fewer layers, and of the whole harness.

    Against a latency-0 server, ``PROFILE_CONCURRENCY`` in flight, unprofiled.
    """
    params: dict[str, Any] = {"model": "oracle", "messages": messages, "tools": tools}
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    endpoint = f"{url}/chat/completions"
    settings = LLMSettings(model="oracle", base_url=url, api_key="x", max_connections=2 * PROFILE_CONCURRENCY)
    async with contextlib.AsyncExitStack() as stack:
        default = plain_client(url, "default")
        aio = plain_client(url, "aiohttp")
        layer = LLMClient(settings)
        layer_openai = LLMClient(settings.model_copy(update={"transport": "openai"}))
        harness = LLMClient(settings)
        for client in (default, aio):
            stack.push_async_callback(client.close)
        for llm_client in (layer, layer_openai, harness):
            stack.push_async_callback(llm_client.aclose)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        bare = await stack.enter_async_context(http.AsyncClient(timeout=60))

        async def typed_post() -> object:
            return await aio.post("/chat/completions", cast_to=ChatCompletion, body=params)

        async def raw_post() -> object:
            response = await aio.post("/chat/completions", cast_to=http.Response, body=params)
            return json.loads(response.content)

        async def bare_aiohttp() -> object:
            async with session.post(endpoint, data=json.dumps(params).encode(), headers=headers) as response:
                return json.loads(await response.read())

        async def bare_httpx() -> object:
            response = await bare.post(endpoint, content=json.dumps(params).encode(), headers=headers)
            return json.loads(response.content)

        async def whole_harness() -> int:
            calls = harness.calls
            with tempfile.TemporaryDirectory(prefix="harness-bench-") as out_dir:
                await run_async(
                    lambda: ApigenEnv(DOMAIN, max_steps=max_steps),
                    lambda: ToolCallingAgent(harness),
                    out_dir,
                    ids,
                    1,
                    PROFILE_CONCURRENCY,
                )
            return harness.calls - calls

        def sized(call: Callable[[], Awaitable[object]]) -> Batch:
            return burst(call, size.calls, PROFILE_CONCURRENCY)

        batches: dict[str, Batch] = {
            "create/default": sized(lambda: plain_call(default, messages, tools)),
            "create/aiohttp": sized(lambda: plain_call(aio, messages, tools)),
            "post typed": sized(typed_post),
            "post raw": sized(raw_post),
            "LLMClient": sized(lambda: layer.complete(messages, tools)),
            "LLMClient/openai": sized(lambda: layer_openai.complete(messages, tools)),
            "bare/aiohttp": sized(bare_aiohttp),
            "bare/httpx": sized(bare_httpx),
            "harness": whole_harness,
        }
        costs = await interleaved_costs(batches, size.rounds)
        if profile is not None:
            profile.enable()
            calls = await whole_harness()
            profile.disable()
            profile.calls = calls  # type: ignore[attr-defined]
    return costs


def print_profile(profile: cProfile.Profile, top: int) -> None:
    """The ``top`` entries by cumulative time, in profiled µs per LLM call."""
    calls = max(1, int(getattr(profile, "calls", 1)))
    stats = cast(dict[Any, Any], pstats.Stats(profile).stats)  # type: ignore[attr-defined]
    ranked = sorted(stats.items(), key=lambda item: item[1][3], reverse=True)
    rows = []
    for (path, line, name), (_, ncalls, tottime, cumulative, _) in ranked[:top]:
        where = f"{Path(path).name}:{line}({name})" if path != "~" else name
        rows.append(
            [
                where,
                f"{ncalls / calls:.1f}",
                f"{tottime / calls * 1e6:.0f}",
                f"{cumulative / calls * 1e6:.0f}",
            ]
        )
    print(f"\ncProfile of the harness at latency 0 ({calls} calls; profiled µs per LLM call, inflated)\n")
    print(tabulate(rows, headers=["function", "calls/call", "own µs", "cumulative µs"], tablefmt="github"))


def print_breakdown(costs: Mapping[str, float], size: BreakdownSize) -> None:
    """The layer costs as differences of the measured paths."""
    c = costs
    rows: list[tuple[str, str]] = [
        ("typed request transform (create − post typed)", f"{c['create/aiohttp'] - c['post typed']:.0f}"),
        (
            "response validation into pydantic (post typed − post raw)",
            f"{c['post typed'] - c['post raw']:.0f}",
        ),
        ("openai request plumbing (post raw − bare aiohttp)", f"{c['post raw'] - c['bare/aiohttp']:.0f}"),
        ("HTTP transport + JSON encode/decode (bare aiohttp)", f"{c['bare/aiohttp']:.0f}"),
        ("= plain create with DefaultAioHttpClient", f"{c['create/aiohttp']:.0f}"),
        (
            "default httpx2 transport instead (create − create aiohttp)",
            f"{c['create/default'] - c['create/aiohttp']:+.0f}",
        ),
        ("= plain create, default client", f"{c['create/default']:.0f}"),
        (
            "LLMClient.complete, transport='openai' (raw post through the client)",
            f"{c['LLMClient/openai']:.0f}",
        ),
        ("harness LLM layer: LLMClient.complete, default aiohttp transport", f"{c['LLMClient']:.0f}"),
        (
            "harness beyond the LLM layer (runner, env, agent, results)",
            f"{c['harness'] - c['LLMClient']:.0f}",
        ),
        ("= harness, whole", f"{c['harness']:.0f}"),
        ("(bare httpx2 client, for comparison)", f"{c['bare/httpx']:.0f}"),
    ]
    print(
        "\nwhere the CPU per call goes: the same request through fewer and fewer layers, CPU µs per call "
        f"(unprofiled, latency 0, C={PROFILE_CONCURRENCY}; median of {size.rounds} interleaved rounds "
        f"of {size.calls} calls, the harness {size.episodes} episodes)\n"
    )
    print(tabulate(rows, headers=["layer", "µs/call"], tablefmt="github", colalign=("left", "right")))


# --- the report -----------------------------------------------------------------------------------


def stop_server(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256, 512])
    parser.add_argument("--latency", type=float, default=1.0, help="seconds the server waits per call")
    parser.add_argument(
        "--seconds", type=float, default=None, help="steady-state window to size runs for (10 latencies)"
    )
    parser.add_argument("--episodes", type=int, default=None, help="episodes per C (default: sized)")
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="C = 16 64 at L = 0.2 s")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the CPU breakdown")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also print the top N cProfile entries of the harness",
    )
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.latency = [16, 64], 0.2
    latency: float = args.latency
    seconds: float = args.seconds if args.seconds is not None else 10 * latency
    raise_open_files_limit()

    env = ApigenEnv(DOMAIN, max_steps=args.max_steps)
    tasks = env.tasks
    ids = [t.id for t in tasks]
    steps = {t.id: oracle_steps(env, t) for t in tasks}  # also warms the gold-diff and parse caches
    messages, tools = baseline_request(env)
    request_kib = len(json.dumps({"messages": messages, "tools": tools}).encode()) / 1024

    traced_mib, traced_kib, rss_mib, rss_kib = measure_memory(tasks, MEMORY_EPISODES, args.max_steps)

    rows = []
    notes = []
    process, url = start_server_process(["--latency", str(latency)])
    try:
        for concurrency in args.concurrency:
            run_ids, trials = plan_episodes(ids, steps, concurrency, seconds / latency, args.episodes)
            plan = (url, process.pid, concurrency, latency, run_ids, trials, args.max_steps, steps)
            runs = {transport: asyncio.run(measure_harness(*plan, transport)) for transport in TRANSPORTS}
            harness, through_openai = runs["aiohttp"], runs["openai"]
            window = harness.window.seconds
            plain = asyncio.run(
                measure_plain(url, process.pid, concurrency, latency, window, messages, tools)
            )
            ideal = concurrency / latency
            h, o, p = harness.window, through_openai.window, plain
            rows.append(
                [
                    concurrency,
                    f"{latency:g}",
                    f"{h.calls_per_s:.1f}",
                    f"{h.calls_per_s / ideal:.3f}",
                    f"{h.cpu_ms_per_call:.3f}",
                    f"{harness.episodes_per_s:.2f}",
                    f"{harness.mean_reward:.3f}",
                    f"{o.calls_per_s / ideal:.3f}",
                    f"{o.cpu_ms_per_call:.3f}",
                    f"{p.calls_per_s:.1f}",
                    f"{p.calls_per_s / ideal:.3f}",
                    f"{p.cpu_ms_per_call:.3f}",
                    f"{p.cpu_ms_per_call / h.cpu_ms_per_call:.1f}×",
                ]
            )
            server = "n/a"
            if h.server_ms_per_call is not None and p.server_ms_per_call is not None:
                server = f"{h.server_ms_per_call:.2f} / {p.server_ms_per_call:.2f} ms per call"
            notes.append(
                f"C={concurrency}: {harness.episodes} episodes planned ({len(run_ids)} tasks × {trials}), "
                f"{harness.finished} finished before the tail was cut; window {h.seconds:.1f} s"
                f"{'' if harness.steady and through_openai.steady else ' (whole run: too few episodes)'}; "
                f"episode errors {harness.episode_errors} / {through_openai.episode_errors} (openai "
                f"transport), plain errors {p.errors}; server CPU (harness / plain) {server}"
            )
            print(f"  measured C={concurrency}", flush=True)
    finally:
        stop_server(process)

    headers = [
        "C",
        "L s",
        "harness calls/s",
        "of C/L",
        "harness CPU ms/call",
        "episodes/s",
        "reward",
        "openai transport: of C/L",
        "CPU ms/call",
        "plain create calls/s",
        "of C/L",
        "plain CPU ms/call",
        "CPU plain / harness",
    ]
    print(
        f"\nretail test split, model oracle, scripted user; the harness with its default aiohttp transport, "
        f"then with transport='openai' (through the client's own stack); plain create sends a "
        f"{len(messages)}-message conversation with {len(tools)} tools ({request_kib:.0f} KiB); CPU is this "
        f"process's user + sys\n"
    )
    print(tabulate(rows, headers=headers, tablefmt="github"))
    for note in notes:
        print(f"  {note}")
    print(
        f"\nmemory: {MEMORY_EPISODES:,} live retail episodes (env + agent, after the oracle's first "
        f"{MEMORY_ACTIONS} actions): {traced_mib:.1f} MiB traced ({traced_kib:.1f} KiB per episode); "
        f"RSS grew {rss_mib:.1f} MiB ({rss_kib:.1f} KiB per episode)"
    )
    if args.no_breakdown:
        return

    size = QUICK_BREAKDOWN if args.quick else BreakdownSize()
    process, url = start_server_process(["--latency", "0"])
    profile = cProfile.Profile() if args.profile else None
    try:
        costs = asyncio.run(
            layer_costs(url, messages, tools, ids[: size.episodes], args.max_steps, profile, size)
        )
    finally:
        stop_server(process)
    print_breakdown(costs, size)
    if profile is not None:
        print_profile(profile, args.profile)


if __name__ == "__main__":
    main()
