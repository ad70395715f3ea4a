"""The shipped travel test split, the sampler that makes it and the API graph it walks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from apigen_gym.core.database import Database
from apigen_gym.core.domain import load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.session import replay
from apigen_gym.core.task import Task
from apigen_gym.domains.travel import sampler
from apigen_gym.domains.travel.graph import API_GRAPH, CANCEL_TRIP, IDENTIFY, TRIP_WRITES, WRITES
from apigen_gym.kit.sampling import problems, task_rows, user_pool
from apigen_gym.players.oracle import OracleAgent

DOMAIN = load_domain("travel")
TEST_TASKS = DOMAIN.tasks("test")
REFUSALS = {
    "refuse_budget",
    "refuse_passport",
    "refuse_driver_age",
    "refuse_basic_change",
    "refuse_late_insurance",
    "refuse_started_trip",
    "refuse_points",
}


def _writes(task: Task) -> list[str]:
    return [a.name for a in task.actions if a.name in WRITES]


def _intents(tasks: list[Task]) -> Counter[str]:
    return Counter(kind for t in tasks for kind in t.meta["intents"])


@pytest.fixture(scope="module")
def database() -> Database:
    return DOMAIN.database()


@pytest.fixture(scope="module")
def env() -> ApigenEnv:
    return ApigenEnv(DOMAIN)


# --- the shipped test split -----------------------------------------------------------------------


def test_test_split_coverage() -> None:
    n = len(TEST_TASKS)
    assert n >= 100 and len({t.id for t in TEST_TASKS}) == n
    used = Counter(name for t in TEST_TASKS for name in _writes(t))
    assert set(used) == set(WRITES), f"write tools never used: {set(WRITES) - set(used)}"
    kinds = _intents(TEST_TASKS)
    assert set(kinds) >= REFUSALS, f"refusals never asked: {REFUSALS - set(kinds)}"
    for kind in (
        "info_cheapest_flight",
        "info_cheapest_hotel",
        "info_flight_status",
        "book_package",
        "transfer",
    ):
        assert kinds[kind] >= 1, kind
    assert kinds["info_cheapest_flight"] >= 10 and kinds["book_package"] >= 10
    assert sum(bool(t.outputs) for t in TEST_TASKS) >= 0.6 * n
    assert sum(len(_writes(t)) >= 2 for t in TEST_TASKS) >= 0.3 * n
    assert sum(any(r.refuse for r in t.goal.requests) for t in TEST_TASKS if t.goal) >= 15


def test_tasks_carry_goal_and_meta() -> None:
    for task in TEST_TASKS:
        assert task.goal is not None and task.goal.requests and set(task.goal.known) == {"email"}
        assert task.meta["split"] == "test" and task.meta["source"] == "sampler"
        assert len(task.meta["intents"]) == len(task.goal.requests)
        assert task.meta["writes"] == len(_writes(task))
        assert task.actions[0].name == "find_user_id_by_email"
        assert all(output and "," not in output for output in task.outputs)


def test_gold_actions_replay_cleanly_and_follow_the_policy(database: Database) -> None:
    broken = {t.id: found for t in TEST_TASKS if (found := problems(DOMAIN, database, t))}
    assert broken == {}


def test_refusal_only_tasks_leave_the_state_unchanged(database: Database) -> None:
    refusals = [t for t in TEST_TASKS if set(t.meta["intents"]) <= REFUSALS]
    assert refusals
    for task in refusals:
        assert replay(DOMAIN.tools, database, task.actions).diff() == {}, task.id


def test_constraint_searches_ask_for_flight_number_and_price() -> None:
    for task in TEST_TASKS:
        for request, kind in zip(task.goal.requests if task.goal else [], task.meta["intents"]):
            if kind == "info_cheapest_flight":
                search = task.actions[request.actions[-1]]
                assert search.name == "search_flights" and "cabin" in search.arguments
                assert "flight number and price" in request.text


@pytest.mark.parametrize("task_id", [t.id for t in TEST_TASKS])
def test_oracle_solves_every_test_task(env: ApigenEnv, task_id: str) -> None:
    obs, info = env.reset(options={"task_id": task_id})
    agent = OracleAgent(DOMAIN.tools)
    agent.reset(info, env.task)
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(agent.act(obs))
    expected_end = "transfer" if "transfer" in env.task.meta["intents"] else "user_stop"
    assert terminated and info["termination"] == expected_end
    assert reward == 1.0, info["reward_info"]
    assert info["reward_info"]["violations"] == []
    if not _writes(env.task):
        assert env.state_diff() == {}


# --- reproducibility ------------------------------------------------------------------------------


def _render(tasks: list[Task]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in task_rows(tasks))


def test_shipped_split_regenerates_byte_for_byte(database: Database) -> None:
    spec = sampler.SPLITS["test"]
    text = _render(sampler.sample_tasks(database, spec.n, spec.seed, "test"))
    assert text == (DOMAIN.home / "tasks" / "test.jsonl").read_text(encoding="utf-8")


def test_sampler_is_deterministic(database: Database) -> None:
    first = sampler.sample_tasks(database, 12, 123, "dev")
    assert _render(first) == _render(sampler.sample_tasks(database, 12, 123, "dev"))
    assert _render(first) != _render(sampler.sample_tasks(database, 12, 124, "dev"))
    assert [Task.model_validate(row) for row in task_rows(first)] == first


def test_splits_draw_from_disjoint_users(database: Database) -> None:
    pools = {name: set(user_pool(database, spec)) for name, spec in sampler.SPLITS.items()}
    assert not pools["test"] & pools["train"] and not pools["test"] & pools["dev"]
    assert {t.user_id for t in TEST_TASKS} <= pools["test"]


def test_main_writes_what_sample_tasks_returns(database: Database, tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    assert sampler.main(["--split", "dev", "--n", "5", "--seed", "9", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == _render(sampler.sample_tasks(database, 5, 9, "dev"))


# --- the API graph --------------------------------------------------------------------------------


def test_graph_reaches_every_write_and_intent_from_identification() -> None:
    assert set(API_GRAPH.roots()) == {*IDENTIFY, "list_airports"}
    for target in {*WRITES, *sampler.FAMILIES} - {sampler.PACKAGE}:
        assert API_GRAPH.path(IDENTIFY[0], target), target
    chain = [e.target for e in API_GRAPH.path(IDENTIFY[0], "get_flight_status")]
    assert chain == ["get_user_details", "get_trip_details", "get_flight_status"]
    assert set(DOMAIN.tools.names) >= set(API_GRAPH.nodes)


def test_graph_forbids_changes_after_a_cancellation() -> None:
    for write in TRIP_WRITES:
        assert not API_GRAPH.allows([CANCEL_TRIP, write])
    assert not API_GRAPH.allows(["add_car_rental", "cancel_car_rental"])
    assert API_GRAPH.allows(["add_hotel_stay", "add_car_rental", "add_trip_insurance"])
