"""The executor seam without a cluster: the per-shard stream, shares of a limit, data folders read
from a copy, and the drivers of eval, Phase 1 and Phase 2 under an executor that plays shards out of
order and loses a worker after every other shard's first record (what a Ray worker's death does).
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from apigen_gym import cli
from apigen_gym.core import domain as domain_module
from apigen_gym.core.domain import load_domain, read_data_from
from apigen_gym.core.env import ApigenEnv
from apigen_gym.evaluation.runner import RESULTS_FILE, evaluate
from apigen_gym.generation.blueprint import Blueprint, ProposalError
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.context import Context
from apigen_gym.generation.phase1 import run_phase1
from apigen_gym.generation.pipeline import generate
from apigen_gym.generation.proposers import TemplateProposer
from apigen_gym.generation.store import RunPaths
from apigen_gym.llm import budget
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.loopback.server import LoopbackServer, ServerConfig
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.players.random_agent import RandomAgent
from apigen_gym.util.executors import ItemT, Job, OutT, Pool, ShardWorker, stream

# --- the stream a worker plays a shard with ---------------------------------------------------------


def test_stream_keeps_width_under_a_gate_shared_by_shards() -> None:
    live, peak = 0, 0

    async def produce(item: int) -> AsyncIterator[int]:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.001)
        yield item
        yield -item
        live -= 1

    async def main() -> tuple[list[int], list[int]]:
        gate = asyncio.Semaphore(3)  # one worker's limit, two shards in it at once

        async def play(shard: list[int]) -> list[int]:
            return [out async for batch in stream(shard, produce, gate, 3) for out in batch]

        return await asyncio.gather(play(list(range(1, 11))), play(list(range(11, 21))))

    first, second = asyncio.run(main())
    assert sorted(first) == sorted([*range(1, 11), *(-i for i in range(1, 11))])
    assert sorted(second) == sorted([*range(11, 21), *(-i for i in range(11, 21))])
    assert peak == 3


def test_stream_hands_on_each_record_even_when_the_work_never_waits() -> None:
    async def produce(item: int) -> AsyncIterator[int]:
        yield item  # no await: like an offline episode

    async def main() -> list[list[int]]:
        return [batch async for batch in stream(range(5), produce, asyncio.Semaphore(1), 1)]

    assert asyncio.run(main()) == [[0], [1], [2], [3], [4]]


def test_a_producer_error_stops_the_stream_and_is_raised() -> None:
    started: list[int] = []

    async def produce(item: int) -> AsyncIterator[int]:
        started.append(item)
        await asyncio.sleep(0.001 if item else 0.0)
        if item == 2:
            raise KeyError("boom")
        await asyncio.sleep(0.05)
        yield item

    async def main() -> None:
        async for _ in stream(range(10), produce, asyncio.Semaphore(4), 4):
            pass

    with pytest.raises(KeyError, match="boom"):
        asyncio.run(main())
    assert started == [0, 1, 2, 3]  # the others never started


# --- shares of a limit -------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 7, 8, 64])
def test_shares_add_up_to_the_limit(limit: int) -> None:
    try:
        for workers in range(1, limit + 1):
            parts = []
            for index in range(workers):
                budget.take_share(index, workers)
                parts.append(budget.share(limit))
            assert sum(parts) == limit and max(parts) - min(parts) <= 1
        budget.take_share(limit, limit + 1)
        with pytest.raises(ValueError, match="use at most"):
            budget.share(limit)
    finally:
        budget.take_share(0, 1)


def test_the_client_keeps_its_workers_share_of_max_in_flight() -> None:
    async def burst(client: LLMClient) -> None:
        await asyncio.gather(*(client.complete([{"role": "user", "content": "hi"}]) for _ in range(12)))
        await client.aclose()

    with LoopbackServer(ServerConfig(latency=0.05)) as server:
        settings = LLMSettings(model="echo", base_url=server.base_url, max_in_flight=5)
        try:
            budget.take_share(1, 2)  # worker 1 of 2: 5 // 2 = 2
            asyncio.run(burst(LLMClient(settings)))
        finally:
            budget.take_share(0, 1)
        assert server.stats()["max_in_flight"] == 2


# --- data folders ------------------------------------------------------------------------------------


def test_a_data_folder_is_read_from_its_copy_by_every_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(domain_module, "_copies", {})
    retail = load_domain("retail")
    copy = tmp_path / "copy"
    (copy / "tasks").mkdir(parents=True)
    (copy / "db").symlink_to(retail.home / "db")
    (copy / "tasks" / "few.jsonl").write_text(
        "".join(t.model_dump_json() + "\n" for t in retail.tasks("test")[:3])
    )
    read_data_from("/nowhere/on/this/machine", copy, "data/mine")
    for name in ("/nowhere/on/this/machine", "data/mine", Path("data/mine/")):
        env = ApigenEnv("retail", data_dir=name, split="few")
        assert [t.id for t in env.tasks] == [t.id for t in retail.tasks("test")[:3]]
    with pytest.raises(domain_module.DataError):
        ApigenEnv("retail", data_dir="data/other", split="few")


# --- the drivers, under a worker that dies -----------------------------------------------------------


class ChaosPool:
    """Shards of three items played in reverse order; every other shard's worker is lost after the
    shard's first record, and what the job rebuilds of it goes to the back of the queue."""

    workers = 1

    def __init__(self, worker: ShardWorker[Any, Any], job: Job[Any, Any]):
        self.worker = worker
        self.job = job
        self.deaths = 0

    async def run(self, items: Sequence[Any]) -> None:
        queue = deque(reversed([list(items[i : i + 3]) for i in range(0, len(items), 3)]))
        dies = True
        while queue:
            shard = queue.popleft()
            records = aiter(self.worker.run(shard))
            async for batch in records:
                for record in batch:
                    self.job.sink(record)
                if dies:
                    break
            else:
                dies = True
                continue
            await records.aclose()  # type: ignore[attr-defined]
            self.deaths += 1
            dies = False
            left = [rest for item in shard if (rest := self.job.rebuild(item)) is not None]
            if left:
                queue.append(left)


class ChaosExecutor:
    name = "chaos"

    def __init__(self) -> None:
        self.pools: list[ChaosPool] = []

    @asynccontextmanager
    async def pool(self, job: Job[ItemT, OutT]) -> AsyncIterator[Pool[ItemT]]:
        worker = job.recipe()
        made = ChaosPool(worker, job)
        self.pools.append(made)
        try:
            yield made
        finally:
            await worker.aclose()

    def describe(self) -> str:
        return "chaos"

    @property
    def deaths(self) -> int:
        return sum(p.deaths for p in self.pools)


def sorted_lines(path: Path) -> list[str]:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    for row in rows:
        row.pop("seconds", None)
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


def run_files(root: Path) -> dict[str, list[str]]:
    paths = RunPaths(root)
    files = (paths.proposals, paths.accepted, paths.removed, paths.dialogues, paths.failures)
    return {path.name: sorted_lines(path) for path in files}


def test_eval_under_chaos_writes_every_episode_once(tmp_path: Path) -> None:
    def make_env() -> ApigenEnv:
        return ApigenEnv("retail", max_steps=8)

    chaos = ChaosExecutor()
    for out, executor in ((tmp_path / "local", None), (tmp_path / "chaos", chaos)):
        evaluate(make_env, lambda: RandomAgent(seed=3), out, trials=2, concurrency=4, executor=executor)
    assert chaos.deaths > 10
    chaotic = sorted_lines(tmp_path / "chaos" / RESULTS_FILE)
    assert chaotic == sorted_lines(tmp_path / "local" / RESULTS_FILE) and len(chaotic) == 230


def test_the_progress_bar_counts_episodes_and_shows_reward_and_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    domain = load_domain("retail")
    ids = [t.id for t in domain.tasks("test")[:20]]
    evaluate(
        lambda: ApigenEnv(domain),
        lambda: OracleAgent(domain.tools),
        tmp_path,
        ids,
        concurrency=4,
        progress=True,
    )
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "20/20" in last and "reward=1.000" in last and "errors=0" in last, last
    steps = int(last.split("steps=")[1].split(",")[0])
    assert steps > 2 * len(ids), last  # every action and user turn counted


@pytest.mark.parametrize("domain", ["retail", "airline"])
def test_generation_under_chaos_writes_the_local_run(domain: str, tmp_path: Path) -> None:
    config = GenerationConfig(domain=domain, n=40, seed=11)
    chaos = ChaosExecutor()
    generate(config, tmp_path / "local")
    generate(config, tmp_path / "chaos", executor=chaos)
    assert chaos.deaths > 10
    local = run_files(tmp_path / "local")
    assert run_files(tmp_path / "chaos") == local
    assert len(local["accepted.jsonl"]) > 40 and len(local["dialogues.jsonl"]) > 40


class FussyProposer(TemplateProposer):
    """The template proposer, failing the first round of every other user's blueprints."""

    async def propose(
        self, context: Context, feedback: list[str], rng: random.Random
    ) -> Blueprint | ProposalError:
        if not feedback and zlib.crc32(context.user_id.encode()) % 2:
            return ProposalError(reason="not yet: ask again")
        return self.propose_now(context, rng)


def test_phase1_under_chaos_goes_on_from_the_rounds_written(tmp_path: Path) -> None:
    config = GenerationConfig(domain="retail", n=30, seed=4, phase="1")
    retail = load_domain("retail")
    chaos = ChaosExecutor()
    for root, executor in ((tmp_path / "local", None), (tmp_path / "chaos", chaos)):
        proposer = FussyProposer.for_domain(retail, retail.database())
        run_phase1(config, RunPaths(root), proposer=proposer, executor=executor)
    local = run_files(tmp_path / "local")
    assert run_files(tmp_path / "chaos") == local
    rounds = [json.loads(row)["round"] for row in local["proposals.jsonl"]]
    assert rounds.count(2) > 5 and chaos.deaths > 5  # blueprints were cut between their rounds


def test_phase2_under_chaos_goes_on_with_the_attempts_left(tmp_path: Path) -> None:
    chaos = ChaosExecutor()
    config = GenerationConfig(domain="retail", n=12, seed=2, attempts=3)
    for root, executor in ((tmp_path / "local", None), (tmp_path / "chaos", chaos)):
        generate(config.model_copy(update={"phase": "1"}), root)
        generate(config.model_copy(update={"phase": "2"}), root, max_steps=4, executor=executor)
    local = run_files(tmp_path / "local")
    assert run_files(tmp_path / "chaos") == local
    attempts = sorted(json.loads(row)["attempt"] for row in local["failures.jsonl"])
    assert attempts.count(3) == len(attempts) // 3 > 0  # every task failed three times


def test_the_cli_names_the_flags_ray_needs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    for argv, message in (
        (["eval", "--env", "retail", "--agent", "oracle", "--ray-address", "x:1"], "--ray-address goes with"),
        (
            ["generate", "--domain", "retail", "-n", "2", "--workers", "2"],
            "--workers goes with --executor ray",
        ),
        (["eval", "--env", "retail", "--agent", "oracle", "--executor", "dask"], "invalid choice: 'dask'"),
    ):
        assert cli.main([*argv, "--out", out]) == 2
        assert message in capsys.readouterr().err
