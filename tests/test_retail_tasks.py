"""The shipped retail task splits and the sampler that makes them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import gymnasium as gym
import pytest

import apigen_gym  # noqa: F401 - registers the environments
from apigen_gym.core.domain import load_domain
from apigen_gym.core.session import replay
from apigen_gym.core.task import Task
from apigen_gym.domains.retail import sampler
from apigen_gym.domains.retail.graph import API_GRAPH, CANCEL, EXCHANGE, MODIFY_ITEMS, RETURN, WRITES
from apigen_gym.kit.sampling import problems, task_rows, user_pool
from apigen_gym.players.oracle import OracleAgent

DOMAIN = load_domain("retail")
TEST_TASKS = DOMAIN.tasks("test")


def _is_refusal(task: Task) -> bool:
    return any(r.refuse for r in task.effective_goal().requests)


def _writes(task: Task) -> list[str]:
    return [a.name for a in task.actions if a.name in WRITES]


@pytest.fixture(scope="module")
def database():
    return DOMAIN.database()


@pytest.fixture(scope="module")
def env():
    made = gym.make("apigen/retail-v0")
    yield made
    made.close()


# --- the shipped test split -----------------------------------------------------------------------


def test_test_split_coverage() -> None:
    n = len(TEST_TASKS)
    assert n >= 110
    assert len({t.id for t in TEST_TASKS}) == n
    per_tool = Counter(name for t in TEST_TASKS for name in _writes(t))
    assert set(per_tool) == set(WRITES), f"write tools never used: {set(WRITES) - set(per_tool)}"
    assert sum(bool(t.outputs) for t in TEST_TASKS) >= 0.25 * n
    assert sum(len(_writes(t)) >= 2 for t in TEST_TASKS) >= 0.25 * n
    assert sum(_is_refusal(t) for t in TEST_TASKS) >= 8


def test_tasks_carry_goal_and_meta() -> None:
    for task in TEST_TASKS:
        assert task.goal is not None and task.goal.requests and task.goal.known
        assert task.meta["split"] == "test" and task.meta["source"] == "sampler"
        assert len(task.meta["intents"]) == len(task.goal.requests)
        assert task.meta["writes"] == len(_writes(task))
        assert task.actions[0].name in ("find_user_id_by_email", "find_user_id_by_name_zip")


@pytest.mark.parametrize("split", ["test", "train"])
def test_gold_actions_replay_cleanly_and_follow_the_policy(database, split: str) -> None:
    broken = {t.id: found for t in DOMAIN.tasks(split) if (found := problems(DOMAIN, database, t))}
    assert broken == {}


def test_refusal_only_tasks_leave_the_state_unchanged(database) -> None:
    refusals = [t for t in TEST_TASKS if _is_refusal(t) and not _writes(t)]
    assert refusals
    for task in refusals:
        assert replay(DOMAIN.tools, database, task.actions).diff() == {}, task.id


@pytest.mark.parametrize("task_id", [t.id for t in TEST_TASKS])
def test_oracle_solves_every_test_task(env, task_id: str) -> None:
    obs, info = env.reset(options={"task_id": task_id})
    agent = OracleAgent(env.unwrapped.domain.tools)
    agent.reset(info, env.unwrapped.task)
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(agent.act(obs))
    assert terminated and info["termination"] == "user_stop"
    assert reward == 1.0, info["reward_info"]
    assert info["reward_info"]["violations"] == []
    if not _writes(env.unwrapped.task):
        assert env.unwrapped.state_diff() == {}


# --- reproducibility ------------------------------------------------------------------------------


def _render(tasks: list[Task]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in task_rows(tasks))


@pytest.mark.parametrize("split", ["test", "train"])
def test_shipped_split_regenerates_byte_for_byte(database, split: str) -> None:
    spec = sampler.SPLITS[split]
    text = _render(sampler.sample_tasks(database, spec.n, spec.seed, split))
    assert text == (DOMAIN.home / "tasks" / f"{split}.jsonl").read_text(encoding="utf-8")


def test_sampler_is_deterministic(database) -> None:
    first = sampler.sample_tasks(database, 15, 123, "dev")
    again = sampler.sample_tasks(database, 15, 123, "dev")
    other = sampler.sample_tasks(database, 15, 124, "dev")
    assert _render(first) == _render(again)
    assert _render(first) != _render(other)


def test_rows_load_back_as_equal_tasks(database) -> None:
    tasks = sampler.sample_tasks(database, 10, 5, "dev")
    assert [Task.model_validate(row) for row in task_rows(tasks)] == tasks


def test_train_and_test_share_no_user_and_no_task(database) -> None:
    test_users = user_pool(database, sampler.SPLITS["test"])
    assert not set(test_users) & set(user_pool(database, sampler.SPLITS["train"]))
    signature = lambda t: json.dumps([t.instruction, [a.model_dump() for a in t.actions]])  # noqa: E731
    assert not {signature(t) for t in TEST_TASKS} & {signature(t) for t in DOMAIN.tasks("train")}


def test_main_writes_what_sample_tasks_returns(database, tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    assert sampler.main(["--split", "dev", "--n", "6", "--seed", "9", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == _render(sampler.sample_tasks(database, 6, 9, "dev"))


# --- the API graph --------------------------------------------------------------------------------


def test_graph_reaches_every_write_from_identification() -> None:
    assert set(API_GRAPH.roots()) == {"find_user_id_by_email", "find_user_id_by_name_zip", sampler.CATALOGUE}
    for write in WRITES:
        for root in ("find_user_id_by_email", "find_user_id_by_name_zip"):
            assert API_GRAPH.path(root, write)
    chain = [e.target for e in API_GRAPH.path("find_user_id_by_email", "get_product_details")]
    assert chain == ["get_user_details", "get_order_details", "get_product_details"]


def test_graph_forbids_conflicting_writes_on_one_order() -> None:
    for pair in [
        (CANCEL, "modify_pending_order_address"),
        (MODIFY_ITEMS, MODIFY_ITEMS),
        (RETURN, EXCHANGE),
        (EXCHANGE, RETURN),
    ]:
        assert not API_GRAPH.allows(pair)
    assert API_GRAPH.allows(["modify_pending_order_address", "modify_pending_order_payment", MODIFY_ITEMS])
