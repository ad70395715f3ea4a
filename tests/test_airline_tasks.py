"""The shipped airline task split, the sampler that makes it and the API graph it walks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env

from apigen_gym.core.database import Database
from apigen_gym.core.domain import load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.session import replay
from apigen_gym.core.task import Task
from apigen_gym.domains.airline import sampler
from apigen_gym.domains.airline.graph import (
    API_GRAPH,
    BOOK,
    CANCEL,
    CHANGE_BAGS,
    CHANGE_FLIGHTS,
    PROFILE,
    SEND_CERTIFICATE,
    TRANSFER,
    WRITES,
)
from apigen_gym.kit.sampling import problems, task_rows, user_pool
from apigen_gym.players.oracle import OracleAgent

DOMAIN = load_domain("airline")
TEST_TASKS = DOMAIN.tasks("test")


def _writes(task: Task) -> list[str]:
    return [a.name for a in task.actions if a.name in WRITES]


def _kinds(tasks: list[Task]) -> Counter[str]:
    return Counter(kind for t in tasks for kind in t.meta["intents"])


@pytest.fixture(scope="module")
def database() -> Database:
    return DOMAIN.database()


# --- the shipped test split -----------------------------------------------------------------------


def test_test_split_coverage() -> None:
    n = len(TEST_TASKS)
    assert n >= 60 and len({t.id for t in TEST_TASKS}) == n
    assert set(Counter(name for t in TEST_TASKS for name in _writes(t))) == set(WRITES)
    kinds = _kinds(TEST_TASKS)
    for kind in (
        "book",
        "change_flight",
        "change_cabin",
        "add_bags",
        "cancel",
        "refuse_cancel",
        "transfer_flown",
    ):
        assert kinds[kind] >= 2, kind
    assert (
        kinds["compensate_cancelled"] + kinds["compensate_delayed"] >= 4 and kinds["refuse_compensation"] >= 1
    )
    assert sum(bool(t.outputs) for t in TEST_TASKS) >= 0.4 * n
    assert sum(len(_writes(t)) >= 2 for t in TEST_TASKS) >= 0.25 * n
    assert sum(any(r.refuse for r in t.effective_goal().requests) for t in TEST_TASKS) >= 12
    bookings = [a.arguments for t in TEST_TASKS for a in t.actions if a.name == BOOK]
    assert any(len(b["payment_methods"]) == 2 for b in bookings) and any(
        b["nonfree_baggages"] for b in bookings
    )
    assert {b["flight_type"] for b in bookings} == {"one_way", "round_trip"}
    assert {b["insurance"] for b in bookings} == {"yes", "no"}
    assert any(len(b["flights"]) > (2 if b["flight_type"] == "round_trip" else 1) for b in bookings)


def test_tasks_carry_goal_and_meta() -> None:
    for task in TEST_TASKS:
        assert task.goal is not None and task.goal.known == {"user_id": task.user_id}
        assert task.actions[0].name == PROFILE and task.actions[0].arguments == {"user_id": task.user_id}
        assert task.goal.requests[0].text.startswith(f"My user id is {task.user_id}.")
        assert task.instruction.startswith(f"Your user id is {task.user_id}.")
        assert task.meta["split"] == "test" and task.meta["source"] == "sampler"
        assert len(task.meta["intents"]) == len(task.goal.requests)
        assert task.meta["writes"] == len(_writes(task))
        served = sorted(i for r in task.goal.requests for i in r.actions)
        assert served == list(range(len(task.actions)))
        if any(a.name == TRANSFER for a in task.actions):
            assert task.actions[-1].name == TRANSFER


def test_gold_actions_replay_cleanly_and_follow_the_policy(database: Database) -> None:
    broken = {t.id: found for t in TEST_TASKS if (found := problems(DOMAIN, database, t))}
    assert broken == {}


def test_refusals_change_nothing(database: Database) -> None:
    refusals = [t for t in TEST_TASKS if not _writes(t)]
    assert refusals
    for task in refusals:
        assert replay(DOMAIN.tools, database, task.actions).diff() == {}, task.id


def test_oracle_solves_every_test_task() -> None:
    env = ApigenEnv(DOMAIN)
    endings: Counter[str] = Counter()
    for task in TEST_TASKS:
        obs, info = env.reset(options={"task_id": task.id})
        agent = OracleAgent(DOMAIN.tools)
        agent.reset(info, env.task)
        terminated = truncated = False
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        assert terminated and reward == 1.0, (task.id, info["reward_info"])
        assert info["reward_info"]["violations"] == [], task.id
        transfer = any(a.name == TRANSFER for a in task.actions)
        assert info["termination"] == ("transfer" if transfer else "user_stop"), task.id
        if not _writes(task):
            assert env.state_diff() == {}, task.id
        endings[info["termination"]] += 1
    assert endings["transfer"] >= 2


def test_env_checker_passes() -> None:
    check_env(ApigenEnv("airline"), skip_render_check=True)


# --- reproducibility ------------------------------------------------------------------------------


def _render(tasks: list[Task]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in task_rows(tasks))


def test_shipped_split_regenerates_byte_for_byte(database: Database) -> None:
    spec = sampler.SPLITS["test"]
    text = _render(sampler.sample_tasks(database, spec.n, spec.seed, "test"))
    assert text == (DOMAIN.home / "tasks" / "test.jsonl").read_text(encoding="utf-8")


def test_sampler_is_deterministic_and_main_writes_it(database: Database, tmp_path: Path) -> None:
    first = sampler.sample_tasks(database, 8, 123, "dev")
    assert _render(first) == _render(sampler.sample_tasks(database, 8, 123, "dev"))
    assert _render(first) != _render(sampler.sample_tasks(database, 8, 124, "dev"))
    assert [Task.model_validate(row) for row in task_rows(first)] == first
    out = tmp_path / "tasks.jsonl"
    assert sampler.main(["--split", "dev", "--n", "8", "--seed", "123", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == _render(first)


def test_splits_draw_from_disjoint_users(database: Database) -> None:
    pools = {name: set(user_pool(database, spec)) for name, spec in sampler.SPLITS.items()}
    assert not pools["test"] & pools["train"] and not pools["test"] & pools["dev"]
    assert {t.user_id for t in TEST_TASKS} <= pools["test"]


# --- the API graph --------------------------------------------------------------------------------


def test_graph_reaches_every_write_from_the_profile() -> None:
    assert set(API_GRAPH.roots()) == {PROFILE, "list_all_airports"}
    for write in (*WRITES, TRANSFER):
        assert API_GRAPH.path(PROFILE, write)
    chain = [e.target for e in API_GRAPH.path(PROFILE, CHANGE_FLIGHTS)]
    assert chain == [CHANGE_FLIGHTS]
    assert [e.target for e in API_GRAPH.path("list_all_airports", BOOK)] == ["search_direct_flight", BOOK]


def test_graph_forbids_changes_after_a_cancellation() -> None:
    for write in (CANCEL, CHANGE_FLIGHTS, CHANGE_BAGS):
        assert not API_GRAPH.allows([CANCEL, write])
    assert API_GRAPH.allows([CHANGE_FLIGHTS, CHANGE_BAGS, CANCEL, SEND_CERTIFICATE])
