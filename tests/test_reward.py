"""Reward: positive and negative controls on τ-bench retail test tasks, driven through the env."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import apigen_gym  # noqa: F401 - registers the envs
from apigen_gym.core.reward import GOLD, output_found
from apigen_gym.core.task import Task
from apigen_gym.core.user import STOP
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.util.jsonio import read_jsonl

ENV_ID = "apigen/retail-v0"
TRANSFER = "transfer_to_human_agents"
GOODBYE = f"Thank you for contacting us, goodbye! {STOP}"
# τ-bench retail test task 2: Yusuf Rossi asks how many t-shirt options there are (output "10") and
# returns three items of order #W2378156 (one write).
TASK = "2"
ORDER = "#W2378156"
USER = "yusuf_rossi_9620"


@pytest.fixture(scope="module")
def data_dir(anchors: Path) -> Path:
    return anchors / "retail"


@pytest.fixture(scope="module")
def expected(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {str(e["id"]): e for e in read_jsonl(data_dir / "expected" / "test.jsonl")}


def make(data_dir: Path, **kwargs: Any) -> gym.Env:
    return gym.make(ENV_ID, data_dir=data_dir, max_steps=500, **kwargs)


def gold_calls(env: gym.Env, task_id: str) -> list[dict[str, Any]]:
    task = next(t for t in env.unwrapped.tasks if t.id == task_id)
    return [{"name": a.name, "arguments": a.arguments} for a in task.actions]


def play(
    env: gym.Env, task_id: str, calls: Sequence[dict[str, Any]], says: Sequence[str] = ()
) -> tuple[float, dict[str, Any]]:
    """Say ``says`` to the user, make ``calls`` as JSON tool calls, then say goodbye; the reward and info."""
    env.reset(options={"task_id": task_id})
    for text in says:
        _, _, terminated, truncated, _ = env.step(text)
        assert not (terminated or truncated), f"the episode ended after saying {text!r}"
    for index, c in enumerate(calls):
        _, reward, terminated, truncated, info = env.step(json.dumps(c))
        if terminated or truncated:
            assert c["name"] == TRANSFER and index == len(calls) - 1, f"{c['name']} ended the episode"
            return float(reward), info
    _, reward, terminated, truncated, info = env.step(GOODBYE)
    assert terminated and not truncated and info["termination"] == "agent_stop"
    return float(reward), info


def report(outputs: Sequence[str]) -> list[str]:
    return ["Here is what I found: " + "; ".join(outputs) + "."] if outputs else []


# --- positive control -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["compat", "strict"])
def test_all_gold_actions_and_outputs_give_reward_one(data_dir: Path, mode: str) -> None:
    env = make(data_dir, output_mode=mode)
    failures = []
    for task in env.unwrapped.tasks:
        reward, info = play(env, task.id, gold_calls(env, task.id), report(task.outputs))
        reward_info = info["reward_info"]
        assert reward_info["output_mode"] == mode
        if reward != 1.0 or not reward_info["state_match"] or reward_info["differing"]:
            failures.append((task.id, reward_info))
        assert [o["output"] for o in reward_info["outputs"]] == task.outputs
    assert len(env.unwrapped.tasks) == 115
    assert not failures, f"{len(failures)} tasks did not get reward 1: {failures[:3]}"


# --- negative controls ------------------------------------------------------------------------------


def test_dropping_a_gold_write_gives_zero(data_dir: Path, expected: dict[str, Any]) -> None:
    env = make(data_dir)
    calls = gold_calls(env, TASK)
    assert calls[-1]["name"] == "return_delivered_order_items"
    reward, info = play(env, TASK, calls[:-1], report(["10"]))
    reward_info = info["reward_info"]
    assert reward == reward_info["reward"] == 0.0
    assert reward_info["state_match"] is False
    assert reward_info["differing"] == {"orders": [ORDER]}
    assert all(o["found"] for o in reward_info["outputs"])
    assert env.unwrapped.state_diff() == {}
    assert list(expected[TASK]["final_diff"]["orders"]) == [ORDER]


def test_dropping_any_successful_gold_write_gives_zero(data_dir: Path, expected: dict[str, Any]) -> None:
    env = make(data_dir)
    write_names = {t.name for t in env.unwrapped.domain.tools if t.kind.value == "write"}
    checked = 0
    for task in env.unwrapped.tasks:
        steps = expected[task.id]["steps"]
        writes = [
            i for i, s in enumerate(steps) if s["name"] in write_names and not s["output"].startswith("Error")
        ]
        if not writes:
            continue
        dropped = writes[-1]
        step = steps[dropped]
        calls = [c for i, c in enumerate(gold_calls(env, task.id)) if i != dropped]
        reward, info = play(env, task.id, calls, report(task.outputs))
        reward_info = info["reward_info"]
        assert reward == 0.0, f"task {task.id}: dropping {step['name']} still got reward {reward}"
        table, key = (
            ("users", step["arguments"]["user_id"])
            if "user_id" in step["arguments"]
            else (
                "orders",
                step["arguments"]["order_id"],
            )
        )
        assert key in reward_info["differing"].get(table, []), (task.id, reward_info["differing"])
        checked += 1
    assert checked > 80


def test_an_extra_write_gives_zero(data_dir: Path) -> None:
    env = make(data_dir)
    extra = {
        "name": "modify_user_address",
        "arguments": {
            "user_id": USER,
            "address1": "1 Elsewhere Road",
            "address2": "",
            "city": "Boston",
            "state": "MA",
            "country": "USA",
            "zip": "02110",
        },
    }
    calls = gold_calls(env, TASK)
    reward, info = play(env, TASK, [*calls, extra], report(["10"]))
    reward_info = info["reward_info"]
    assert reward == 0.0
    assert reward_info["state_match"] is False
    assert reward_info["differing"] == {"users": [USER]}
    # an extra read changes nothing
    reward, info = play(
        env, TASK, [*calls, {"name": "get_user_details", "arguments": {"user_id": USER}}], ["10"]
    )
    assert reward == 1.0, info["reward_info"]


def test_a_write_that_fails_is_not_an_extra_write(data_dir: Path) -> None:
    env = make(data_dir)
    failing = {"name": "cancel_pending_order", "arguments": {"order_id": ORDER, "reason": "no longer needed"}}
    reward, info = play(env, TASK, [failing, *gold_calls(env, TASK)], ["10"])
    assert reward == 1.0, info["reward_info"]


def test_a_missing_output_gives_zero(data_dir: Path) -> None:
    env = make(data_dir)
    reward, info = play(env, TASK, gold_calls(env, TASK), ["Let me process your return now."])
    reward_info = info["reward_info"]
    assert reward == 0.0
    assert reward_info["state_match"] is True and reward_info["differing"] == {}
    assert reward_info["outputs"] == [{"output": "10", "found": False}]


def test_one_of_two_outputs_missing_gives_zero(data_dir: Path) -> None:
    env = make(data_dir)
    task = next(t for t in env.unwrapped.tasks if t.id == "19")
    assert task.outputs == ["54.04", "41.64"]
    reward, info = play(env, task.id, gold_calls(env, task.id), ["The refund is 54.04."])
    assert reward == 0.0
    assert info["reward_info"]["outputs"] == [
        {"output": "54.04", "found": True},
        {"output": "41.64", "found": False},
    ]


def test_outputs_in_tool_results_or_user_messages_do_not_count(data_dir: Path) -> None:
    env = make(data_dir)
    # the gold reads return "10" t-shirt variants among their outputs, but the agent never says it
    reward, info = play(env, TASK, gold_calls(env, TASK), ["Tell me more?"])
    assert reward == 0.0 and info["reward_info"]["outputs"][0]["found"] is False
    tool_text = " ".join(str(m["content"]) for m in env.unwrapped.messages if m["role"] != "assistant")
    assert "10" in tool_text


# --- output modes -----------------------------------------------------------------------------------


def test_compat_finds_10_inside_100_and_strict_does_not(data_dir: Path) -> None:
    compat, strict = make(data_dir), make(data_dir, output_mode="strict")
    calls = gold_calls(compat, TASK)
    said = ["There are 100 t-shirt options available."]
    reward, info = play(compat, TASK, calls, said)
    assert reward == 1.0 and info["reward_info"]["outputs"] == [{"output": "10", "found": True}]
    reward, info = play(strict, TASK, calls, said)
    assert reward == 0.0 and info["reward_info"]["outputs"] == [{"output": "10", "found": False}]
    assert info["reward_info"]["output_mode"] == "strict"
    for text in ("There are 10 t-shirt options.", "That comes to $10.00 in total.", "Options: 10."):
        reward, info = play(strict, TASK, calls, [text])
        assert reward == 1.0, (text, info["reward_info"])


@pytest.mark.parametrize(
    ("output", "said"), [("1000", "It costs 1,000 dollars."), ("1,000", "It costs 1000 dollars.")]
)
def test_strict_mode_reads_thousands_separators(data_dir: Path, output: str, said: str) -> None:
    task = Task(id="numbers", instruction="Ask how much it costs.", outputs=[output])
    env = gym.make(ENV_ID, data_dir=data_dir, tasks=[task], output_mode="strict")
    reward, info = play(env, "numbers", [], [said])
    assert reward == 1.0, info["reward_info"]
    reward, info = play(env, "numbers", [], ["It costs 10000 dollars."])
    assert reward == 0.0


def test_output_found_compat() -> None:
    assert output_found("10", ["There are 100 options"])
    assert output_found("10", ["1,0"])  # commas are removed from the agent's text
    assert output_found("Polyester", ["it is POLYESTER"])
    assert output_found("8276.23", ["a total of $8,276.23"])
    assert output_found("cotton", ["cottonwood"])
    assert output_found("10", ["nothing here", "but 10 here"])
    assert not output_found("10", [])
    assert not output_found("10", ["ten"])
    assert not output_found("1,000", ["1,000"])  # τ-bench: the output keeps its comma, the text loses it
    assert output_found("10", ["100"], mode="compat")


@pytest.mark.parametrize(
    ("output", "message", "found"),
    [
        ("10", "100", False),
        ("10", "1010", False),
        ("10", "10.5", False),
        ("10", "the 10th", False),
        ("10", "-10", False),
        ("10", "10", True),
        ("10", "$10.00", True),
        ("10", "It is 10.", True),
        ("10", "$10.00!", True),
        ("10", "10.00", True),
        ("1000", "1,000", True),
        ("1,000", "1000", True),
        ("1000", "It costs 1,000, in total", True),
        ("1000", "1,000,000", False),
        ("10.5", "10.50", True),
        ("8276.23", "$8,276.23", True),
        ("$10", "10 dollars", True),
        ("cotton", "Cotton shirt", True),
        ("cotton", "cottonwood", False),
        ("IL", "Chicago, IL 60621", True),
        ("IL", "Illinois", False),
        ("64GB", "the 64GB model", True),
        ("20 hours", "about 20 hours of battery", True),
        ("Suite 356", "943 Maple Drive, Suite 356, Chicago", True),
    ],
)
def test_output_found_strict(output: str, message: str, found: bool) -> None:
    assert output_found(output, [message], mode="strict") is found


# --- the gold cache ---------------------------------------------------------------------------------


def test_gold_diff_is_cached_and_equals_the_tau_bench_final_diff(
    data_dir: Path, expected: dict[str, Any]
) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK})
    unwrapped = env.unwrapped
    first = GOLD.diff(unwrapped.domain.tools, unwrapped.database, unwrapped.task)
    second = GOLD.diff(unwrapped.domain.tools, unwrapped.database, unwrapped.task)
    assert second is first
    assert first == expected[TASK]["final_diff"]
    # another env on the same data shares the cached gold
    other = make(data_dir)
    other.reset(options={"task_id": TASK})
    assert GOLD.diff(other.unwrapped.domain.tools, other.unwrapped.database, other.unwrapped.task) is first
    # computing the reward does not change the gold
    play(env, TASK, gold_calls(env, TASK), ["10"])
    assert (
        GOLD.diff(unwrapped.domain.tools, unwrapped.database, unwrapped.task) == expected[TASK]["final_diff"]
    )


def test_gold_is_keyed_by_the_actions_not_only_the_task_id(data_dir: Path) -> None:
    env = make(data_dir)
    real = next(t for t in env.unwrapped.tasks if t.id == TASK)
    fake = real.model_copy(update={"actions": real.actions[:-1]})
    unwrapped = env.unwrapped
    assert GOLD.diff(unwrapped.domain.tools, unwrapped.database, fake) == {}
    assert GOLD.diff(unwrapped.domain.tools, unwrapped.database, real) != {}


def test_the_gold_cache_lets_go_of_a_task_nobody_else_holds(data_dir: Path) -> None:
    env = make(data_dir)
    real = next(t for t in env.unwrapped.tasks if t.id == TASK)
    unwrapped = env.unwrapped
    for _ in range(3):  # tasks of one run after another, each a new object
        task = real.model_copy()
        assert GOLD.diff(unwrapped.domain.tools, unwrapped.database, task) == GOLD.diff(
            unwrapped.domain.tools, unwrapped.database, real
        )
        gone = weakref.ref(task)
        del task
        gc.collect()
        assert gone() is None  # its gold entry went with it
    assert GOLD.diff(unwrapped.domain.tools, unwrapped.database, real) is GOLD.diff(
        unwrapped.domain.tools, unwrapped.database, real
    )


# --- policy violations ------------------------------------------------------------------------------


def test_violation_penalty_lowers_the_reward(data_dir: Path) -> None:
    """A write without the user's prior 'yes' breaks retail.confirm_before_write; the penalty applies."""
    calls = gold_calls(make(data_dir), TASK)
    # reported only (default): the reward is still 1
    reward, info = play(make(data_dir), TASK, calls, report(["10"]))
    assert reward == 1.0
    rules = {v["rule"] for v in info["reward_info"]["violations"]}
    assert "retail.confirm_before_write" in rules, info["reward_info"]["violations"]
    # with a penalty the same episode scores less
    penalised = make(data_dir, violation_penalty=0.25)
    reward, info = play(penalised, TASK, calls, report(["10"]))
    violations = info["reward_info"]["violations"]
    assert violations
    assert reward == pytest.approx(max(0.0, 1.0 - 0.25 * len(violations)))
    assert reward < 1.0
    assert info["reward_info"]["violation_penalty"] == 0.25
    assert any(
        v["rule"] == "retail.confirm_before_write" and v["step"] == len(calls) - 1 for v in violations
    ), violations


def test_violation_penalty_spares_a_compliant_episode(data_dir: Path) -> None:
    env = make(data_dir, violation_penalty=0.25)
    observation, info = env.reset(options={"task_id": TASK})
    agent = OracleAgent(env.unwrapped.domain.tools)
    agent.reset(info, env.unwrapped.task)
    while True:
        observation, reward, terminated, truncated, info = env.step(agent.act(observation))
        if terminated or truncated:
            break
    assert info["reward_info"]["violations"] == []
    assert reward == 1.0
