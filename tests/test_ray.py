"""The Ray executor on a real local Ray cluster (one for the module, 2 CPUs, loopback only).

- a seeded offline ``eval`` and ``generate`` on Ray write the same records as the local executor;
- ``kill -9`` of a Ray worker mid-run loses and doubles nothing (its unfinished shards run again);
- the driver killed mid-run resumes like a local run, and the run may switch executors;
- a user's ``--data-dir`` reaches workers through the object store (the folder is gone from the
  driver's disk once shipped); the global ``--max-in-flight`` holds across workers;
- a cluster that cannot be reached is one line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from apigen_gym import cli
from apigen_gym.core.domain import load_domain
from apigen_gym.evaluation.runner import RESULTS_FILE
from apigen_gym.generation.store import RunPaths
from apigen_gym.integrations import ray as ray_executor
from apigen_gym.loopback.server import LoopbackServer, ServerConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster shared by the module's tests; its address (HOST:PORT)."""
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0", "conftest keeps Ray on 127.0.0.1"
    with pytest.MonkeyPatch.context() as patch:
        for name in ("RAY_ADDRESS", "OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
            patch.delenv(name, raising=False)
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
        try:
            address = str(ray.get_runtime_context().gcs_address)
            assert address.startswith("127.0.0.1:")
            yield address
        finally:
            ray.shutdown()


@pytest.fixture(autouse=True)
def idle_cluster(cluster: str) -> None:
    """Each test starts with every CPU of the cluster free (a killed driver's workers take a moment
    to be stopped)."""
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        assert time.monotonic() < deadline, f"the cluster stays busy: {ray.available_resources()}"
        time.sleep(0.1)


def run_cli(*argv: str | Path) -> int:
    return cli.main([str(a) for a in argv])


def episodes(out: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every line of ``results.jsonl`` as (task, trial) → record without its wall time; fails on a
    doubled pair or a damaged line."""
    rows = [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]
    found = {(r["task_id"], r["trial"]): {k: v for k, v in r.items() if k != "seconds"} for r in rows}
    assert len(found) == len(rows), "a (task, trial) was written twice"
    return found


def generated(run: Path) -> dict[str, list[str]]:
    """Each JSONL file of a generation run as its sorted lines (wall times taken out)."""
    paths = RunPaths(run)
    files = {}
    for path in (paths.proposals, paths.accepted, paths.removed, paths.dialogues, paths.failures):
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
        for row in rows:
            row.pop("seconds", None)
        files[path.name] = sorted(json.dumps(row, sort_keys=True) for row in rows)
    return files


def actor_pids() -> list[int]:
    """Ray workers of this machine now running a shard (their process title says so)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::ShardActor.run"):
            pids.append(int(entry.name))
    return pids


class Killer(threading.Thread):
    """Kills (SIGKILL) one Ray worker that is playing a shard once ``ready()`` says so; remembers its pid."""

    def __init__(self, ready: Callable[[], bool], deadline: float = 120.0):
        super().__init__(daemon=True)
        self.ready = ready
        self.deadline = time.monotonic() + deadline
        self.killed: int | None = None

    def run(self) -> None:
        while self.killed is None and time.monotonic() < self.deadline:
            pids = actor_pids() if self.ready() else []
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                self.killed = pids[0]
            time.sleep(0.005)


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


# --- same records ----------------------------------------------------------------------------------


def test_seeded_offline_eval_on_ray_writes_the_local_records(cluster: str, tmp_path: Path) -> None:
    common = (
        "eval",
        "--env",
        "retail",
        "--agent",
        "random",
        "--seed",
        "7",
        "--trials",
        "2",
        "--max-steps",
        "12",
    )
    assert run_cli(*common, "--out", tmp_path / "local") == 0
    # a run begun on the local executor and finished on Ray: one writer, so it resumes alike
    first = ",".join(t.id for t in load_domain("retail").tasks("test")[:5])
    assert run_cli(*common, "--tasks", first, "--out", tmp_path / "ray") == 0
    assert run_cli(*common, "--out", tmp_path / "ray", "--executor", "ray", "--ray-address", cluster) == 0
    local, remote = episodes(tmp_path / "local"), episodes(tmp_path / "ray")
    assert len(local) == 2 * 115 and remote == local
    assert 0 < sum(r["reward"] for r in local.values()) < len(local)  # not all alike: the agent's draws count


def test_seeded_offline_generate_on_ray_writes_the_local_records(cluster: str, tmp_path: Path) -> None:
    common = ("generate", "--domain", "airline", "-n", "40", "--seed", "3")
    assert run_cli(*common, "--out", tmp_path / "local") == 0
    assert run_cli(*common, "--out", tmp_path / "ray", "--executor", "ray", "--workers", "2") == 0
    local, remote = generated(tmp_path / "local"), generated(tmp_path / "ray")
    assert remote == local
    assert len(local["accepted.jsonl"]) >= 40 and len(local["dialogues.jsonl"]) >= 40
    # the stats the driver adds up from what the workers sent equal those of the local run
    counted = ("phase2", "dialogues", "language", "coverage")
    local_stats, remote_stats = (
        json.loads((tmp_path / r / "stats.json").read_text()) for r in ("local", "ray")
    )
    assert {k: remote_stats[k] for k in counted} == {k: local_stats[k] for k in counted}
    assert local_stats["language"]["user"]["bigrams"] > 0


# --- faults ----------------------------------------------------------------------------------------


WORKER_LOST = (
    r"apigen-gym: warning: a Ray worker \(pid (\d+)\) died: its unfinished items run again on a new worker"
)


def test_a_worker_killed_mid_eval_loses_and_doubles_nothing(
    cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ray"
    killer = Killer(lambda: lines(out / RESULTS_FILE) >= 40)
    killer.start()
    status = run_cli(
        "eval", "--env", "retail", "--agent", "oracle", "--trials", "8", "--out", out, "--executor", "ray"
    )
    killer.join()
    assert status == 0 and killer.killed is not None
    assert re.findall(WORKER_LOST, capsys.readouterr().err) == [str(killer.killed)]
    found = episodes(out)
    assert set(found) == {(t.id, k) for t in load_domain("retail").tasks("test") for k in range(8)}
    assert all(r["reward"] == 1.0 for r in found.values())


def test_a_worker_killed_mid_generate_loses_and_doubles_nothing(
    cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ("generate", "--domain", "retail", "-n", "150", "--seed", "5")
    assert run_cli(*common, "--out", tmp_path / "local") == 0
    run = RunPaths(tmp_path / "ray")
    killers = [Killer(lambda: lines(run.proposals) >= 20), Killer(lambda: lines(run.dialogues) >= 20)]
    for killer in killers:
        killer.start()
    assert run_cli(*common, "--out", run.root, "--executor", "ray") == 0
    for killer in killers:
        killer.join()
    assert all(k.killed for k in killers), "a worker of each phase was killed"
    assert re.findall(WORKER_LOST, capsys.readouterr().err) == [str(k.killed) for k in killers]
    assert generated(run.root) == generated(tmp_path / "local")


def test_the_driver_killed_mid_run_resumes_on_either_executor(cluster: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["eval", "--env", "retail", "--agent", "oracle", "--trials", "6", "--out", str(out)]
    log = tmp_path / "driver.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "apigen_gym.cli", *argv, "--executor", "ray", "--ray-address", cluster],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 120
            while process.poll() is None and lines(out / RESULTS_FILE) < 60 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert process.poll() is None, f"the run ended before it could be killed: {log.read_text()}"
            process.kill()
        finally:
            process.kill()
            process.wait(timeout=30)
    kept = (out / RESULTS_FILE).read_bytes()
    kept = kept[: kept.rfind(b"\n") + 1]
    assert 0 < kept.count(b"\n") < 115 * 6
    assert run_cli(*argv) == 0  # resumed by the local executor
    found = episodes(out)
    assert (out / RESULTS_FILE).read_bytes().startswith(kept)
    assert set(found) == {(t.id, k) for t in load_domain("retail").tasks("test") for k in range(6)}
    assert run_cli(*argv, "--executor", "ray") == 0 and episodes(out) == found  # nothing left to do


def test_an_unreachable_cluster_is_one_line(cluster: str, tmp_path: Path, refused_url: str) -> None:
    address = refused_url.removeprefix("http://").removesuffix("/v1")  # bound, not listening
    for command in (
        ["eval", "--env", "retail", "--agent", "oracle"],
        ["generate", "--domain", "retail", "-n", "2"],
    ):
        argv = [*command, "--out", str(tmp_path / "out"), "--executor", "ray", "--ray-address", address]
        done = subprocess.run(
            [sys.executable, "-m", "apigen_gym.cli", *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert (
            done.stderr
            == f"apigen-gym: error: cannot reach the Ray cluster at {address}: connection refused\n"
        )
        assert not (tmp_path / "out").exists()


# --- data and limits -------------------------------------------------------------------------------


def test_a_data_dir_reaches_workers_that_cannot_see_it(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain = load_domain("retail")
    data = tmp_path / "mine"
    shutil.copytree(domain.home / "db", data / "db")
    (data / "tasks").mkdir()
    test = (domain.home / "tasks" / "test.jsonl").read_text().splitlines(keepends=True)
    (data / "tasks" / "picked.jsonl").write_text("".join(test[3:9]))  # a split only this folder has
    packed = ray_executor.pack

    def pack_then_hide(folder: Path) -> dict[str, bytes]:
        files = packed(folder)
        folder.rename(folder.with_name("hidden"))  # gone from the driver's disk once shipped
        return files

    monkeypatch.setattr(ray_executor, "pack", pack_then_hide)
    monkeypatch.chdir(tmp_path)  # and named relatively, as a user types it
    argv = ["eval", "--env", "retail", "--agent", "oracle", "--split", "picked", "--data-dir", "mine"]
    assert run_cli(*argv, "--out", "ray", "--executor", "ray") == 0
    assert not data.exists()
    (tmp_path / "hidden").rename(data)
    assert run_cli(*argv, "--out", "local") == 0
    assert episodes(tmp_path / "ray") == episodes(tmp_path / "local")
    assert {task for task, _ in episodes(tmp_path / "ray")} == {json.loads(t)["id"] for t in test[3:9]}


def test_the_last_items_go_out_as_one_shard_for_each_worker(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shards shrink as the run goes on, down to the least size; what is left then is shared evenly, a
    last shard for each worker, not cut into ever smaller shards (each costs a round trip)."""
    sizes: list[int] = []
    pack = ray_executor.pack_shard

    def sized(items: list[Any]) -> Any:
        sizes.append(len(items))
        return pack(items)

    monkeypatch.setattr(ray_executor, "pack_shard", sized)
    tasks = ",".join(t.id for t in load_domain("retail").tasks("test")[:40])
    argv = ["eval", "--env", "retail", "--agent", "oracle", "--tasks", tasks, "--trials", "4"]
    assert run_cli(*argv, "--concurrency", "4", "--executor", "ray", "--workers", "2", "--out", tmp_path) == 0
    assert len(episodes(tmp_path)) == sum(sizes) == 160
    *guided, last, other = sizes
    assert guided == sorted(guided, reverse=True) and min(guided) >= ray_executor.MIN_SHARD
    filled = 2 * ray_executor.SHARDS_PER_WORKER * ray_executor.MIN_SHARD  # both workers' shards of 16
    assert abs(last - other) <= 1 and last + other <= filled


def test_max_in_flight_is_a_limit_across_workers(cluster: str, tmp_path: Path) -> None:
    tasks = ",".join(t.id for t in load_domain("retail").tasks("test")[:12])
    common = ["eval", "--env", "retail", "--agent-model", "oracle", "--tasks", tasks, "--concurrency", "4"]
    common += ["--trials", "3", "--executor", "ray", "--workers", "2"]  # shards left for a late worker
    peaks = {}
    for limit in ("3", None):
        with LoopbackServer(ServerConfig(latency=0.05)) as server:
            flags = ["--max-in-flight", limit] if limit else []
            assert (
                run_cli(*common, "--base-url", server.base_url, *flags, "--out", tmp_path / str(limit)) == 0
            )
            peaks[limit] = server.stats()["max_in_flight"]
        assert all(r["reward"] == 1.0 for r in episodes(tmp_path / str(limit)).values())
    assert peaks["3"] == 3  # shares of 2 and 1, both in use at once
    assert peaks[None] > 4  # without the limit, the two workers' episodes add up
