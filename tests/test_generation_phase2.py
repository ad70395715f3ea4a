"""Phase 2: verified dialogues offline and through the loopback server, labels, resume, pipeline, stats."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.task import Task
from apigen_gym.core.tools import ToolKind
from apigen_gym.core.user import STOP
from apigen_gym.domains.retail import DOMAIN
from apigen_gym.domains.retail.sampler import sample_tasks
from apigen_gym.evaluation.runner import EpisodeResult
from apigen_gym.generation import phase2, pipeline
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.export import export
from apigen_gym.generation.phase2 import (
    DialogueRecord,
    conversation_digest,
    label_of,
    read_records,
    run_phase2,
    write_task_split,
)
from apigen_gym.generation.pipeline import (
    GenerationError,
    RunConfigError,
    generate,
    generate_main,
)
from apigen_gym.generation.stats import GenerationStats, compute_stats, rule_subjects, wording, write_stats
from apigen_gym.generation.store import RunPaths
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.loopback.server import LoopbackServer, ServerConfig
from apigen_gym.players.scripted_user import ScriptedUser
from apigen_gym.util.jsonio import read_json, read_jsonl, read_models, write_json, write_jsonl

N = 20
SEED = 11


def with_provenance(tasks: list[Task], seed: int) -> list[Task]:
    """Sampler tasks dressed as Phase 1's accepted tasks (a provenance dict in meta)."""
    out = []
    for task in tasks:
        provenance = {
            "source": "template",
            "proposer": None,
            "persona": task.instruction.rsplit(". ", 1)[-1],
            "context": {"user_id": task.user_id, "walk": [[a.name for a in task.actions]]},
            "rounds": 1,
            "feedback": [],
            "votes": [],
            "state_change": {"writes": task.meta.get("writes", 0)},
            "parents": [],
            "seed": seed,
            "env_version": DOMAIN.version,
            "harness_version": "test",
        }
        out.append(task.model_copy(update={"meta": {**task.meta, "provenance": provenance}}))
    return out


def fixture_tasks(n: int = N, seed: int = SEED) -> list[Task]:
    return with_provenance(sample_tasks(DOMAIN.database(), n, seed, "train"), seed)


def write_accepted(run_dir: Path, tasks: list[Task]) -> RunPaths:
    paths = RunPaths(run_dir)
    write_jsonl(paths.accepted, [t.model_dump(mode="json") for t in tasks])
    return paths


def replay(messages: list[dict[str, Any]], task: Task, seed: int) -> tuple[float, list[dict[str, Any]]]:
    """Play the recorded assistant turns into a fresh env with the scripted user, reset with the episode's
    seed (the user's wording is drawn from it): reward and conversation."""
    env = ApigenEnv(DOMAIN, database=DOMAIN.database(), tasks=[task], user=ScriptedUser())
    env.reset(seed=seed, options={"task_id": task.id})
    reward, done = 0.0, False
    for message in messages:
        if message["role"] != "assistant":
            continue
        assert not done, "the conversation goes on after the env ended it"
        action = message if message.get("tool_calls") else (message.get("content") or "")
        _, step_reward, terminated, truncated, _ = env.step(action)
        reward, done = float(step_reward), terminated or truncated
    assert done, "the replayed conversation did not end"
    return reward, env.messages


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return fixture_tasks()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tasks: list[Task]) -> Iterator[LoopbackServer]:
    folder = tmp_path_factory.mktemp("served")
    write_task_split(tasks, folder, "accepted")
    config = ServerConfig(oracle_data_dir=folder, oracle_splits=["accepted"])
    with LoopbackServer(config) as running:
        yield running


def model(server: LoopbackServer, name: str, **kwargs: Any) -> LLMSettings:
    return LLMSettings(model=name, base_url=server.base_url, api_key="test", max_retries=0, **kwargs)


# --- offline ------------------------------------------------------------------------------------


def test_offline_phase2_keeps_20_verified_dialogues_that_replay_to_reward_1(
    tmp_path: Path, tasks: list[Task]
) -> None:
    paths = write_accepted(tmp_path, tasks)
    stats = run_phase2(GenerationConfig(domain="retail", n=N, phase="2", concurrency=4), paths)
    assert (stats.tasks, stats.attempted, stats.episodes, stats.dialogues) == (N, N, N, N)
    assert stats.failures == {}
    records = read_records(paths.dialogues)
    assert len(records) == N and not paths.failures.read_text()
    assert {r.task_id for r in records} == {t.id for t in tasks}
    assert all(r.attempt == 1 and r.label == "success" and r.reward == 1.0 for r in records)

    out = tmp_path / "sft.jsonl"
    assert export(tmp_path, "openai", out) == N
    by_id = {t.id: t for t in tasks}
    for row in read_jsonl(out):
        task = by_id[row["provenance"]["task_id"]]
        reward, replayed = replay(row["messages"], task, row["provenance"]["seeds"]["episode"])
        assert reward == 1.0
        assert conversation_digest(replayed) == conversation_digest(row["messages"])


def test_the_progress_bar_counts_tasks_and_shows_kept_and_steps(
    tmp_path: Path, tasks: list[Task], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_accepted(tmp_path, tasks)
    run_phase2(GenerationConfig(domain="retail", n=N, phase="2", concurrency=4), paths, progress=True)
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"{N}/{N}" in last and f"kept={N}" in last and "failed=0" in last, last
    assert int(last.split("steps=")[1].split("]")[0]) > 2 * N, last  # every action and user turn


def test_records_carry_episode_models_seeds_versions_and_provenance(
    tmp_path: Path, tasks: list[Task]
) -> None:
    paths = write_accepted(tmp_path, tasks[:3])
    run_phase2(GenerationConfig(domain="retail", n=3, phase="2", seed=5), paths)
    record = read_records(paths.dialogues)[0]
    task = next(t for t in tasks if t.id == record.task_id)
    assert record.messages[0] == {"role": "system", "content": DOMAIN.policy.text}
    assert record.tools == DOMAIN.tools.schemas
    assert record.reward_info["state_match"] is True
    assert record.models.model_dump() == {
        "agent": "oracle",
        "user": "scripted",
        "user_best_of": 1,
        "critic": None,
    }
    assert record.seeds.run == 5 and record.seeds.agent == record.seeds.episode  # the oracle's wording
    assert (record.env_id, record.env_version) == ("apigen/retail-v0", DOMAIN.version)
    assert record.provenance == task.meta["provenance"]
    assert record.task == task
    assert record.usage.total_tokens == 0 and record.cost == 0.0


def test_same_seed_same_dialogues(tmp_path: Path, tasks: list[Task]) -> None:
    config = GenerationConfig(domain="retail", n=5, phase="2", concurrency=3)
    digests = []
    for name in ("a", "b"):
        paths = write_accepted(tmp_path / name, tasks[:5])
        run_phase2(config, paths)
        digests.append(sorted((r.task_id, r.digest, r.seeds.episode) for r in read_records(paths.dialogues)))
    assert digests[0] == digests[1]


def test_identical_conversations_are_kept_once(
    tmp_path: Path, tasks: list[Task], monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = tasks[0].model_copy(update={"id": "twin"})
    paths = write_accepted(tmp_path, [tasks[0], twin])
    monkeypatch.setattr(phase2, "episode_seed", lambda run, task_id, attempt: 7)  # same seed: same words
    stats = run_phase2(GenerationConfig(domain="retail", n=2, phase="2", concurrency=1), paths)
    assert (stats.dialogues, stats.duplicates) == (1, 1)
    (failure,) = read_records(paths.failures)
    assert failure.label == "duplicate" and failure.reward == 1.0
    assert failure.duplicate_of == f"{tasks[0].id}#1"


def test_removed_tasks_are_not_played(tmp_path: Path, tasks: list[Task]) -> None:
    paths = write_accepted(tmp_path, tasks[:4])
    row = {"task": tasks[1].model_dump(mode="json"), "reason": "duplicate", "detail": "", "overlaps": "x"}
    write_jsonl(paths.removed, [row])
    stats = run_phase2(GenerationConfig(domain="retail", n=4, phase="2"), paths)
    assert stats.tasks == 3
    assert tasks[1].id not in {r.task_id for r in read_records(paths.dialogues)}


# --- labels -------------------------------------------------------------------------------------


def _result(**kwargs: Any) -> EpisodeResult:
    base: dict[str, Any] = {
        "task_id": "t",
        "trial": 1,
        "reward": 1.0,
        "reward_info": {"state_match": True, "outputs": [{"output": "7", "found": True}], "violations": []},
        "messages": [],
        "termination": "user_stop",
        "steps": 3,
        "env_id": "apigen/retail-v0",
        "agent": "a",
        "user": "u",
        "seconds": 0.0,
    }
    return EpisodeResult(**{**base, **kwargs})


def test_labels() -> None:
    info = {"state_match": True, "outputs": [{"output": "7", "found": True}], "violations": []}
    assert label_of(_result()) == "success"
    assert label_of(_result(reward=0.0, error="infrastructure: APIConnectionError after 1 attempt")) == (
        "infrastructure"
    )
    assert label_of(
        _result(reward=0.0, termination="max_steps", reward_info={**info, "state_match": False})
    ) == ("turn_limit")
    assert label_of(_result(reward=0.0, reward_info={**info, "state_match": False})) == "state_mismatch"
    missing = {**info, "outputs": [{"output": "7", "found": False}]}
    assert label_of(_result(reward=0.0, reward_info=missing)) == "missing_output"
    violation = {**info, "violations": [{"rule": "retail.confirm_before_write", "step": 2, "message": "m"}]}
    assert label_of(_result(reward_info=violation)) == "policy_violation"


def test_turn_limit_episodes_are_labelled_and_not_kept(tmp_path: Path, tasks: list[Task]) -> None:
    paths = write_accepted(tmp_path, tasks[:3])
    stats = run_phase2(GenerationConfig(domain="retail", n=3, phase="2", attempts=2), paths, max_steps=2)
    assert stats.dialogues == 0 and stats.failures == {"turn_limit": 6}
    assert all(r.termination == "max_steps" for r in read_records(paths.failures))


# --- through the loopback server, with the real client ------------------------------------------


def test_oracle_model_through_the_server_keeps_only_verified_dialogues(
    tmp_path: Path, tasks: list[Task], server: LoopbackServer
) -> None:
    paths = write_accepted(tmp_path, tasks)
    config = GenerationConfig(domain="retail", n=N, phase="2", agent=model(server, "oracle"), concurrency=8)
    stats = run_phase2(config, paths)
    assert stats.dialogues == N and stats.episodes == N and stats.usage.total_tokens > 0
    by_id = {t.id: t for t in tasks}
    for record in read_records(paths.dialogues):
        assert record.models.agent == "oracle" and record.seeds.agent == record.seeds.episode
        assert record.usage.total_tokens > 0
        reward, replayed = replay(record.messages, by_id[record.task_id], record.seeds.episode)
        assert reward == 1.0 and conversation_digest(replayed) == record.digest


def test_chatty_model_failures_are_labelled_and_nothing_unverified_is_kept(
    tmp_path: Path, tasks: list[Task], server: LoopbackServer
) -> None:
    paths = write_accepted(tmp_path, tasks)
    config = GenerationConfig(domain="retail", n=N, phase="2", agent=model(server, "chatty"), attempts=2)
    stats = run_phase2(config, paths)
    failures = read_records(paths.failures)
    kept = read_records(paths.dialogues)
    assert failures and set(stats.failures) <= {"state_mismatch", "missing_output"}
    assert {r.label for r in failures} <= {"state_mismatch", "missing_output"}
    assert all(r.reward == 0.0 for r in failures)
    writes = {t.name for t in DOMAIN.tools.of_kind(ToolKind.WRITE)}
    by_id = {t.id: t for t in tasks}
    for r in failures:
        task = by_id[r.task_id]
        has_write = any(a.name in writes for a in task.actions)
        assert r.label == ("state_mismatch" if has_write else "missing_output")
    assert Counter(r.task_id for r in failures) == {t: 2 for t in {r.task_id for r in failures}}
    for r in kept:  # only tasks a silent agent solves: no write, nothing to say
        task = by_id[r.task_id]
        assert not task.outputs and not any(a.name in writes for a in task.actions)
        assert replay(r.messages, task, r.seeds.episode)[0] == 1.0
    assert len(kept) + len({r.task_id for r in failures}) == N


def test_server_down_is_labelled_infrastructure(tmp_path: Path, tasks: list[Task]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = LLMSettings(
        model="oracle", base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=1, backoff_base=0.01
    )
    paths = write_accepted(tmp_path, tasks[:4])
    stats = run_phase2(GenerationConfig(domain="retail", n=4, phase="2", agent=down, attempts=2), paths)
    assert stats.dialogues == 0 and stats.failures == {"infrastructure": 8}
    for r in read_records(paths.failures):
        assert r.label == "infrastructure" and r.error and r.error.startswith("infrastructure:")
    assert not read_records(paths.dialogues)


def test_best_of_n_user_with_critic(tmp_path: Path, tasks: list[Task], server: LoopbackServer) -> None:
    paths = write_accepted(tmp_path, tasks[:6])
    config = GenerationConfig(
        domain="retail",
        n=6,
        phase="2",
        user=model(server, "scripted-user"),
        user_best_of=3,
        critic=model(server, "critic"),
        concurrency=6,
    )
    stats = run_phase2(config, paths)
    assert stats.dialogues == 6
    served = server.stats()["models"]
    assert served["critic"] >= 3 * 6 and served["scripted-user"] >= 3 * 6
    by_id = {t.id: t for t in tasks}
    for record in read_records(paths.dialogues):
        assert record.models.model_dump() == {
            "agent": "oracle",
            "user": "scripted-user",
            "user_best_of": 3,
            "critic": "critic",
        }
        assert record.usage.total_tokens > 0
        assert replay(record.messages, by_id[record.task_id], record.seeds.episode)[0] == 1.0


# --- resume -------------------------------------------------------------------------------------


def test_resume_after_a_kill_skips_recorded_pairs(tmp_path: Path, tasks: list[Task]) -> None:
    config = GenerationConfig(domain="retail", n=N, phase="2")
    paths = write_accepted(tmp_path, tasks)
    run_phase2(config, paths)
    lines = paths.dialogues.read_text().splitlines(keepends=True)
    paths.dialogues.write_text("".join(lines[:8]) + lines[8][:40])  # killed while writing the 9th
    again = run_phase2(config, paths)
    assert (again.already_done, again.attempted, again.episodes) == (8, N - 8, N - 8)
    records = read_records(paths.dialogues)
    assert sorted(r.task_id for r in records) == sorted(t.id for t in tasks)
    assert run_phase2(config, paths).episodes == 0


def test_resume_plays_only_the_attempts_not_recorded(
    tmp_path: Path, tasks: list[Task], server: LoopbackServer
) -> None:
    paths = write_accepted(tmp_path, tasks[:5])
    chatty = model(server, "chatty")
    first = run_phase2(GenerationConfig(domain="retail", n=5, phase="2", agent=chatty, attempts=1), paths)
    failed = {r.task_id for r in read_records(paths.failures)}
    second = run_phase2(GenerationConfig(domain="retail", n=5, phase="2", agent=chatty, attempts=3), paths)
    assert second.attempted == len(failed) and second.episodes == 2 * len(failed)
    pairs = [(r.task_id, r.attempt) for r in read_records(paths.failures)]
    assert len(pairs) == len(set(pairs)) == first.episodes - first.dialogues + second.episodes
    assert {a for t, a in pairs} == {1, 2, 3}


# --- pipeline -----------------------------------------------------------------------------------


def test_pipeline_saves_config_refuses_other_settings_and_allows_runtime_changes(
    tmp_path: Path, tasks: list[Task]
) -> None:
    write_accepted(tmp_path, tasks[:4])
    agent = LLMSettings(model="oracle", base_url="http://127.0.0.1:9/v1", api_key="sk-secret")
    config = GenerationConfig(domain="retail", n=4, phase="2")
    stats = generate(config, tmp_path)
    assert stats.phase2.dialogues == 4
    saved = read_json(tmp_path / "config.json")
    assert saved["domain"] == "retail" and saved["versions"]["env"] == DOMAIN.version
    generate(config.model_copy(update={"concurrency": 32}), tmp_path)  # runtime only: resumes
    more = generate(config.model_copy(update={"n": 8, "attempts": 5}), tmp_path)  # how much: resumes
    assert more.phase2.episodes == 4 and read_json(tmp_path / "config.json")["n"] == 8
    with pytest.raises(RunConfigError, match="seed: 0 → 1"):
        generate(config.model_copy(update={"seed": 1}), tmp_path)
    with pytest.raises(RunConfigError, match="agent"):
        generate(config.model_copy(update={"agent": agent}), tmp_path)
    other = tmp_path / "keyed"
    write_accepted(other, tasks[:1])
    down = agent.model_copy(update={"max_retries": 0})
    assert generate(config.model_copy(update={"agent": down}), other).phase2.failures == {"infrastructure": 3}
    assert "sk-secret" not in (other / "config.json").read_text()


def test_generate_main_says_offline_and_writes_stats(tmp_path: Path, tasks: list[Task]) -> None:
    write_accepted(tmp_path, tasks[:5])
    text = generate_main(GenerationConfig(domain="retail", n=5, phase="2"), tmp_path)
    assert "offline: template proposer, rules only, scripted user, oracle agent" in text
    assert "verified dialogues" in text and (tmp_path / "stats.json").is_file()
    stats = GenerationStats.model_validate(read_json(tmp_path / "stats.json"))
    assert stats.phase2.dialogues == 5


def test_phase2_needs_accepted_tasks(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="accepted"):
        generate(GenerationConfig(domain="retail", n=3, phase="2"), tmp_path)


def test_missing_phase1_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "PHASE1_MODULE", "apigen_gym.generation.no_such_phase1")
    with pytest.raises(GenerationError, match="Phase 1 is not available"):
        generate(GenerationConfig(domain="retail", n=3, phase="all"), tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec(pipeline.PHASE1_MODULE) is None, reason="Phase 1 is not installed"
)
def test_whole_offline_pipeline_verifies_every_accepted_task(tmp_path: Path) -> None:
    stats = generate(GenerationConfig(domain="retail", n=10, seed=3), tmp_path)
    paths = RunPaths(tmp_path)
    accepted = {t.id: t for t in read_models(paths.accepted, Task)}
    assert (
        len(accepted) >= 10 and stats.phase2.dialogues == len(accepted) and stats.phase2.success_rate == 1.0
    )
    assert stats.phase1 is not None and stats.phase1["accepted"] == 10  # Phase 1's own counts, kept
    for record in read_records(paths.dialogues):
        assert record.provenance == accepted[record.task_id].meta["provenance"]
        assert replay(record.messages, accepted[record.task_id], record.seeds.episode)[0] == 1.0
    again = generate(GenerationConfig(domain="retail", n=10, seed=3, concurrency=2), tmp_path)
    assert again.phase2.episodes == stats.phase2.episodes  # resumed: nothing replayed


def test_run_stats_gathered_as_episodes_are_recorded_equal_those_read_from_the_files(tmp_path: Path) -> None:
    """A run's stats come from what it holds (the episodes as recorded, the rows it wrote); read from a
    copy of its folder, which no process holds, they are the same."""

    def read_again(stats: GenerationStats) -> GenerationStats:
        copy = shutil.copytree(tmp_path / "run", tmp_path / f"copy-{stats.phase2.episodes}")
        return compute_stats("retail", copy, stats.seconds)

    cut = generate(GenerationConfig(domain="retail", n=8, seed=4, attempts=2), tmp_path / "run", max_steps=3)
    assert cut.phase2.failures and cut.phase2.episodes > cut.phase2.dialogues  # episodes cut short
    assert cut == read_again(cut)
    grown = generate(GenerationConfig(domain="retail", n=16, seed=4, attempts=3), tmp_path / "run")
    assert grown.phase2.dialogues > cut.phase2.dialogues and grown.phase2.episodes > cut.phase2.episodes
    assert grown == read_again(grown)  # the episodes of the first run count too


# --- stats --------------------------------------------------------------------------------------


def test_stats_numbers(tmp_path: Path, tasks: list[Task]) -> None:
    paths = write_accepted(tmp_path, tasks)

    def row(kind: str, outcome: str, *passes: bool, **extra: Any) -> dict[str, Any]:
        stages = ("format", "execution", "policy")
        verdicts = [{"stage": stage, "passed": ok} for stage, ok in zip(stages, passes)]
        return {"kind": kind, "outcome": outcome, "verdicts": verdicts, **extra}

    proposals = [
        row("proposal", "retry", True, False, cost=0.5, usage={"prompt_tokens": 10}),
        row("proposal", "accepted", True, True, True, cost=0.25),
        row("proposal", "rejected", False),
        row("recombination", "accepted", True),
    ]
    write_jsonl(paths.proposals, proposals)
    write_json(paths.stats, {"phase1": {"blueprints": 4}})  # Phase 1's own counts
    run_phase2(GenerationConfig(domain="retail", n=N, phase="2"), paths)
    stats = compute_stats("retail", tmp_path)
    write_stats(stats, tmp_path)
    assert read_json(paths.stats)["phase1"] == {"blueprints": 4}

    acceptance = {a.stage: (a.checked, a.passed, a.rate) for a in stats.phase1_summary.acceptance}
    assert acceptance == {
        "format": (3, 2, 0.6667),
        "execution": (2, 1, 0.5),
        "policy": (1, 1, 1.0),
        "overall (blueprints)": (2, 1, 0.5),
    }
    summary = stats.phase1_summary
    assert (summary.proposals, summary.accepted, summary.recombinations) == (3, N, 1)
    assert stats.phase1_summary.feedback_rounds == {"1": N} and stats.phase1_summary.cost == 0.75
    assert (stats.phase2.tasks, stats.phase2.dialogues, stats.phase2.success_rate) == (N, N, 1.0)
    assert stats.phase2.attempts_per_task == 1.0 and stats.phase2.success_at_attempt == {"1": N}

    records = read_records(paths.dialogues)
    turns = [sum(m["role"] in ("user", "assistant") for m in r.messages) for r in records]
    calls = [sum(len(m.get("tool_calls") or []) for m in r.messages) for r in records]
    assert stats.dialogues.turns.mean == round(sum(turns) / N, 3) and stats.dialogues.turns.max == max(turns)
    assert stats.dialogues.tool_calls.mean == round(sum(calls) / N, 3)

    writes = [t.name for t in DOMAIN.tools.of_kind(ToolKind.WRITE)]
    expected = {w: sum(any(a.name == w for a in t.actions) for t in tasks) for w in writes}
    assert stats.coverage.write_tools == expected
    assert stats.coverage.unused_write_tools == [w for w in writes if not expected[w]]
    assert stats.coverage.rules["retail.authenticate_first"] == N
    cancels = expected["cancel_pending_order"]
    assert stats.coverage.rules["retail.cancel_reason"] == cancels
    assert stats.coverage.rules["retail.transfer_only_out_of_scope"] == 0
    assert stats.spend.tokens == 10 and stats.spend.cost_per_dialogue == round(0.75 / N, 8)

    said = {
        side: [m["content"] for r in records for m in r.messages if m["role"] == side and m["content"]]
        for side in ("user", "assistant")
    }
    assert stats.language.user == wording(said["user"]) and stats.language.agent == wording(said["assistant"])
    assert stats.language.user.turns == len(said["user"]) and 0 < stats.language.agent.distinct_2 < 1


def test_distinct_2_counts_word_bigrams_within_turns() -> None:
    measured = wording(["Yes, please go ahead.", f"yes please go home {STOP}", "Hi!"])
    assert (measured.turns, measured.bigrams, measured.distinct_bigrams) == (3, 6, 4)
    assert measured.distinct_2 == round(4 / 6, 4) and wording([]).distinct_2 == 0.0


def test_rule_subjects() -> None:
    subjects = rule_subjects(DOMAIN)
    assert subjects["retail.cancel_reason"] == {"cancel_pending_order"}
    assert subjects["retail.exchange_once"] == {"exchange_delivered_order_items"}
    assert subjects["retail.modify_items_once"] == {"modify_pending_order_items"}
    assert subjects["retail.authenticate_first"] == frozenset()


def test_failure_records_are_json_rows_with_the_same_schema(tmp_path: Path, tasks: list[Task]) -> None:
    paths = write_accepted(tmp_path, tasks[:2])
    run_phase2(GenerationConfig(domain="retail", n=2, phase="2", attempts=1), paths, max_steps=1)
    rows = [json.loads(line) for line in paths.failures.read_text().splitlines()]
    assert len(rows) == 2 and set(rows[0]) == set(DialogueRecord.model_fields)
