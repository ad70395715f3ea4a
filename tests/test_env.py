"""The Gymnasium contract of ``apigen/retail-v0``: registration, reset, step, messages, async, vector."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from openai.types.chat import ChatCompletionMessage
from openai.types.chat.chat_completion_message_tool_call import ChatCompletionMessageToolCall, Function

import apigen_gym
from apigen_gym.core.domain import Domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.policy import Policy
from apigen_gym.core.task import Action, Task
from apigen_gym.core.tools import Tool, ToolError, ToolKind, ToolSet, tool
from apigen_gym.core.user import STOP
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.players.scripted_user import ScriptedUser

ENV_ID = "apigen/retail-v0"
TASK_ID = "0"  # τ-bench retail test task 0: identify by name + zip, read, exchange two items


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments})


@pytest.fixture(scope="module")
def data_dir(anchors: Path) -> Path:
    return anchors / "retail"


def make(data_dir: Path, **kwargs: Any) -> gym.Env:
    return gym.make(ENV_ID, data_dir=data_dir, **kwargs)


def assert_openai_format(messages: list[dict[str, Any]]) -> None:
    """System first; roles valid; every assistant tool call answered by exactly one tool message, in order."""
    assert messages and messages[0]["role"] == "system" and isinstance(messages[0]["content"], str)
    assert all(m["role"] != "system" for m in messages[1:])
    pending: list[str] = []
    for index, message in enumerate(messages):
        role = message["role"]
        assert role in ("system", "user", "assistant", "tool"), message
        if role == "tool":
            assert pending, f"message {index}: tool message without a pending tool call"
            assert message["tool_call_id"] == pending.pop(0), f"message {index}: tool_call_id out of order"
            assert isinstance(message["content"], str)
            continue
        assert not pending, f"message {index}: tool calls {pending} were never answered"
        if role == "assistant" and message.get("tool_calls"):
            for tool_call in message["tool_calls"]:
                assert tool_call["type"] == "function"
                assert isinstance(tool_call["id"], str) and tool_call["id"]
                assert isinstance(tool_call["function"]["name"], str)
                assert isinstance(json.loads(tool_call["function"]["arguments"]), dict)
                pending.append(tool_call["id"])
            ids = [c["id"] for c in message["tool_calls"]]
            assert len(set(ids)) == len(ids), "duplicate tool call ids in one message"
        else:
            assert isinstance(message.get("content"), str), message
    assert not pending, f"tool calls {pending} were never answered"
    json.dumps(messages)  # serialisable as is


def run_oracle(env: gym.Env, task_id: str) -> tuple[list[str], float, dict[str, Any]]:
    observation, info = env.reset(options={"task_id": task_id})
    agent = OracleAgent(env.unwrapped.domain.tools)
    agent.reset(info, env.unwrapped.task)
    observations = [observation]
    while True:
        observation, reward, terminated, truncated, info = env.step(agent.act(observation))
        observations.append(observation)
        if terminated or truncated:
            return observations, float(reward), info


# --- registration and the checker -------------------------------------------------------------------


def test_registered_after_import() -> None:
    assert ENV_ID in apigen_gym.ENV_IDS
    assert ENV_ID in gym.registry


def test_make_with_default_data() -> None:
    """Default kwargs: the shipped, offline data and the scripted user."""
    env = gym.make(ENV_ID)
    observation, info = env.reset(seed=0)
    assert isinstance(observation, str) and observation
    assert info["task_id"] in {t.id for t in env.unwrapped.tasks}
    check_env(env.unwrapped)
    env.close()


def test_make_with_module_prefix_needs_no_import(data_dir: Path) -> None:
    code = (
        "import sys, gymnasium as gym\n"
        "assert 'apigen_gym' not in sys.modules\n"
        f"env = gym.make('apigen_gym:{ENV_ID}', data_dir={str(data_dir)!r})\n"
        "obs, info = env.reset(seed=0)\n"
        "assert isinstance(obs, str) and info['task_id']\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_make_with_module_prefix_in_process(data_dir: Path) -> None:
    env = gym.make(f"apigen_gym:{ENV_ID}", data_dir=data_dir)
    assert isinstance(env.unwrapped, ApigenEnv)
    assert isinstance(env.reset(seed=0)[0], str)


def test_check_env_on_anchor_data(data_dir: Path) -> None:
    for render_mode in (None, "ansi"):
        env = make(data_dir, render_mode=render_mode)
        check_env(env.unwrapped)
        env.close()


def test_spaces_accept_any_string_and_sample(data_dir: Path) -> None:
    env = make(data_dir)
    for space in (env.observation_space, env.action_space):
        for text in ("", "x" * 100_000, "日本語 \x00 \n", '{"name": 1}'):
            assert space.contains(text)
        assert not space.contains(3)
        space.seed(1)
        first = [space.sample() for _ in range(5)]
        space.seed(1)
        assert [space.sample() for _ in range(5)] == first
        assert all(isinstance(s, str) and space.contains(s) for s in first)


@pytest.mark.filterwarnings("ignore:.*render_mode")
def test_bad_constructor_arguments(data_dir: Path) -> None:
    with pytest.raises(ValueError):
        make(data_dir, render_mode="rgb_array")
    with pytest.raises(ValueError):
        make(data_dir, output_mode="fuzzy")
    with pytest.raises(ValueError):
        make(data_dir, split="no-such-split")
    with pytest.raises(ValueError):
        make(data_dir, user="telepathic")
    for max_steps in (0, -1, "x", 2.5, True):
        with pytest.raises(ValueError, match="max_steps"):
            make(data_dir, max_steps=max_steps)
    with pytest.raises(ValueError, match="user='scripted' plays offline and takes no user_best_of"):
        make(data_dir, user_best_of=3)
    with pytest.raises(ValueError, match="takes no user_model"):
        make(data_dir, user_model="gpt-4o")


# --- reset ------------------------------------------------------------------------------------------


def test_reset_with_empty_options(data_dir: Path) -> None:
    env = make(data_dir)
    for options in ({}, None):
        observation, info = env.reset(options=options)
        assert isinstance(observation, str) and observation


def test_reset_info(data_dir: Path) -> None:
    env = make(data_dir)
    observation, info = env.reset(options={"task_id": TASK_ID})
    assert info["task_id"] == TASK_ID
    assert info["policy"] == env.unwrapped.policy and isinstance(info["policy"], str)
    tools = info["tools"]
    assert len(tools) == 16
    for schema in tools:
        assert schema["type"] == "function"
        assert set(schema["function"]) >= {"name", "description", "parameters"}
        assert schema["function"]["parameters"]["type"] == "object"
    task = env.unwrapped.task
    assert task.id == TASK_ID
    assert task.instruction in observation
    messages = env.unwrapped.messages
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == info["policy"]
    assert messages[1]["content"] == observation


def test_reset_with_the_same_seed_picks_the_same_task(data_dir: Path) -> None:
    env, other = make(data_dir), make(data_dir)
    picks = []
    for seed in range(6):
        first = env.reset(seed=seed)
        env.step("hello")
        second = env.reset(seed=seed)
        third = other.reset(seed=seed)
        assert first[1]["task_id"] == second[1]["task_id"] == third[1]["task_id"]
        assert first[0] == second[0] == third[0]
        picks.append(first[1]["task_id"])
    assert len(set(picks)) > 1, "different seeds should not always pick the same task"


def test_reset_options_task_id_and_split(data_dir: Path) -> None:
    env = make(data_dir)
    _, info = env.reset(options={"task_id": 5})
    assert info["task_id"] == "5"
    _, info = env.reset(options={"split": "dev", "task_id": "3"})
    assert info["task_id"] == "3" and info["split"] == "dev"
    assert len(env.unwrapped.tasks) == 20
    with pytest.raises(ValueError):
        env.reset(options={"task_id": "no-such-task"})


def test_a_relative_data_dir_is_found_from_the_current_folder(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders are resolved once per process, but a relative name still means the current folder's."""
    for where, split in (("a", "dev"), ("b", "test")):
        (tmp_path / where / "data" / "tasks").mkdir(parents=True)
        (tmp_path / where / "data" / "db").symlink_to(data_dir / "db")
        (tmp_path / where / "data" / "tasks" / f"{split}.jsonl").symlink_to(data_dir / "tasks" / "dev.jsonl")
    for where, split in (("a", "dev"), ("b", "test"), ("a", "dev")):
        monkeypatch.chdir(tmp_path / where)
        env = ApigenEnv("retail", data_dir="data", split=split)
        assert env.domain.splits("data") == [split]
        assert env.reset(options={"task_id": "3"})[1]["split"] == split


def test_task_index_gives_each_task_its_position(data_dir: Path) -> None:
    domain = ApigenEnv("retail", data_dir=data_dir).domain
    tasks, index = domain.tasks("dev", data_dir), domain.task_index("dev", data_dir)
    assert list(index) == [t.id for t in tasks] and all(tasks[i].id == k for k, i in index.items())


def test_a_failed_reset_leaves_the_env_as_it_was(data_dir: Path) -> None:
    env = make(data_dir, split="test")
    env.reset(options={"task_id": "1"})
    env.step(call("cancel_pending_order", order_id="#W5056519", reason="ordered by mistake"))
    inner = env.unwrapped
    before = (inner.split, inner.task.id, list(inner.messages), inner.state_diff(), inner.steps_taken)
    rng_state = inner.np_random.bit_generator.state
    for options, error in [
        ({"split": "no-such-split"}, ValueError),
        ({"split": "dev", "task_id": "no-such-task"}, ValueError),
        ({"task_index": 10_000}, ValueError),
        ({"task_index": "3"}, TypeError),
        ({"task": "3"}, ValueError),  # unknown keys are refused, not ignored
        ({"task_id": "3", "seed": 1}, ValueError),
    ]:
        with pytest.raises(error):
            env.reset(options=options)
        after = (inner.split, inner.task.id, list(inner.messages), inner.state_diff(), inner.steps_taken)
        assert after == before and inner.np_random.bit_generator.state == rng_state, options
    assert env.step(call("calculate", expression="1 + 1"))[0] == "2.0"  # the episode goes on
    _, info = env.reset(seed=0)
    assert info["split"] == "test" and info["task_id"] in {t.id for t in inner.domain.tasks("test", data_dir)}


def test_a_reset_whose_user_fails_leaves_the_env_as_it_was(data_dir: Path) -> None:
    class Flaky(ScriptedUser):
        fail = False

        def start(self, task: Task, seed: int | None = None) -> str:
            opening = super().start(task, seed)
            if self.fail:
                raise RuntimeError("the user simulator is down")
            return opening

    user = Flaky()
    env = make(data_dir, user=user)
    first, _ = env.reset(seed=3)
    user.fail = True
    with pytest.raises(RuntimeError):
        env.reset(seed=4)
    with pytest.raises(RuntimeError):
        env.reset()  # no new seed: the draw must not advance the RNG for good
    user.fail = False
    twin = make(data_dir, user=Flaky())  # what the env would be, had the failed resets not been tried
    assert twin.reset(seed=3)[0] == first and env.unwrapped.messages[1]["content"] == first
    question = "Could you tell me your email address, or your name and zip code?"
    assert env.step(question)[0] == twin.step(question)[0]  # the same user goes on
    assert env.reset()[1]["task_id"] == twin.reset()[1]["task_id"]  # the same RNG too


def test_split_in_reset_options_stays_the_envs_split(data_dir: Path) -> None:
    """A reset with ``split`` switches the env to that split for the resets after it (also the
    automatic resets of vector envs), until another split is asked for."""
    env = make(data_dir, split="test")
    _, info = env.reset(options={"split": "dev"})
    dev = {t.id for t in env.unwrapped.domain.tasks("dev", data_dir)}
    assert info["split"] == "dev" and info["task_id"] in dev
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert info["split"] == "dev" and info["task_id"] in dev
    _, info = env.reset(options={"split": "test", "task_index": 0})
    assert info["split"] == "test" and env.unwrapped.split == "test"


def test_reset_starts_from_a_clean_state(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": "1"})
    env.step(call("cancel_pending_order", order_id="#W5056519", reason="ordered by mistake"))
    assert env.unwrapped.state_diff() != {}
    env.reset(options={"task_id": "1"})
    assert env.unwrapped.state_diff() == {}
    assert [m["role"] for m in env.unwrapped.messages] == ["system", "user"]


# --- step: action forms -----------------------------------------------------------------------------


def test_json_tool_call(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    observation, reward, terminated, truncated, info = env.step(
        call("find_user_id_by_name_zip", first_name="Yusuf", last_name="Rossi", zip="19122")
    )
    assert observation == "yusuf_rossi_9620"
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["task_id"] == TASK_ID
    assistant, tool_message = env.unwrapped.messages[-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["function"]["name"] == "find_user_id_by_name_zip"
    assert tool_message == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "name": "find_user_id_by_name_zip",
        "content": "yusuf_rossi_9620",
    }
    assert_openai_format(env.unwrapped.messages)


def test_plain_text_message_gets_a_user_reply(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    text = "Could you tell me your email address, or your first name, last name and zip code?"
    observation, reward, terminated, truncated, _ = env.step(text)
    assert observation == "I'm Yusuf Rossi, zip code 19122."
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert env.unwrapped.messages[-2:] == [
        {"role": "assistant", "content": text},
        {"role": "user", "content": observation},
    ]


def test_dict_tool_call(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    observation, *_ = env.step({"name": "calculate", "arguments": {"expression": "(2 + 3) * 4"}})
    assert observation == "20.0"


def test_dict_openai_message_with_two_tool_calls_runs_both_in_order(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_order_details", "arguments": json.dumps({"order_id": "#W2378156"})},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "calculate", "arguments": json.dumps({"expression": "1 + 1"})},
            },
        ],
    }
    observation, reward, terminated, truncated, _ = env.step(message)
    order, result = observation.split("\n\n")
    assert json.loads(order)["order_id"] == "#W2378156"
    assert result == "2.0"
    messages = env.unwrapped.messages
    assert [m["role"] for m in messages[-3:]] == ["assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in messages[-2:]] == ["call_a", "call_b"]
    assert [m["name"] for m in messages[-2:]] == ["get_order_details", "calculate"]
    assert messages[-1]["content"] == "2.0"
    assert_openai_format(messages)


def test_two_writes_in_one_message_run_in_order(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    address = {"address2": "", "city": "Philadelphia", "state": "PA", "country": "USA", "zip": "19122"}
    first = {"user_id": "yusuf_rossi_9620", "address1": "1 First St", **address}
    second = {"user_id": "yusuf_rossi_9620", "address1": "2 Second St", **address}
    env.step(
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "1", "function": {"name": "modify_user_address", "arguments": json.dumps(first)}},
                {"id": "2", "function": {"name": "modify_user_address", "arguments": json.dumps(second)}},
            ],
        }
    )
    assert env.unwrapped.state_diff()["users"]["yusuf_rossi_9620"]["address"]["address1"] == "2 Second St"


def test_openai_message_object(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    message = ChatCompletionMessage(
        role="assistant",
        content=None,
        tool_calls=[
            ChatCompletionMessageToolCall(
                id="call_xyz",
                type="function",
                function=Function(
                    name="get_product_details", arguments=json.dumps({"product_id": "1656367028"})
                ),
            ),
            ChatCompletionMessageToolCall(
                id="call_abc",
                type="function",
                function=Function(name="calculate", arguments='{"expression": "10 / 4"}'),
            ),
        ],
    )
    observation, reward, terminated, truncated, _ = env.step(message)
    product, result = observation.split("\n\n")
    assert json.loads(product)["name"] == "Mechanical Keyboard"
    assert result == "2.5"
    messages = env.unwrapped.messages
    assert [m.get("tool_call_id") for m in messages[-2:]] == ["call_xyz", "call_abc"]
    assert_openai_format(messages)
    # a message object with text only talks to the user
    observation, *_ = env.step(ChatCompletionMessage(role="assistant", content="Hello there!"))
    assert messages[-2] == {"role": "assistant", "content": "Hello there!"}
    assert messages[-1] == {"role": "user", "content": observation}


def test_malformed_actions_become_error_observations(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    for action in (
        '{"name": "calculate", "arguments": ',
        call("no_such_tool"),
        call("calculate"),
        call("calculate", expression="1", extra=True),
        call("get_order_details", order_id=123),
        {"name": "calculate", "arguments": "not json"},
        {"foo": "bar"},
    ):
        observation, reward, terminated, truncated, _ = env.step(action)
        assert observation.startswith("Error: "), (action, observation)
        assert (reward, terminated, truncated) == (0.0, False, False)
    assert env.unwrapped.state_diff() == {}


def test_messages_stay_in_openai_format_over_an_episode(data_dir: Path) -> None:
    env = make(data_dir)
    run_oracle(env, TASK_ID)
    messages = env.unwrapped.messages
    assert_openai_format(messages)
    roles = [m["role"] for m in messages]
    assert roles[:2] == ["system", "user"] and "tool" in roles
    calls = [c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert [c["id"] for c in calls] == answered


def test_tool_calls_after_a_transfer_in_the_same_message_are_still_answered(data_dir: Path) -> None:
    """Every tool call of an assistant message needs a tool message, or the OpenAI API rejects the history."""
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    _, _, terminated, _, _ = env.step(
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "t1",
                    "function": {"name": "transfer_to_human_agents", "arguments": '{"summary": "x"}'},
                },
                {"id": "t2", "function": {"name": "calculate", "arguments": '{"expression": "1 + 1"}'}},
            ],
        }
    )
    assert terminated
    assert_openai_format(env.unwrapped.messages)


# --- the end of an episode --------------------------------------------------------------------------


def test_oracle_episode_gets_reward_one(data_dir: Path) -> None:
    env = make(data_dir)
    for task_id in ("0", "2", "16"):
        observations, reward, info = run_oracle(env, task_id)
        assert reward == 1.0, info["reward_info"]
        assert info["reward_info"]["state_match"] is True
        assert info["termination"] in ("user_stop", "agent_stop", "transfer")


def test_step_after_the_end_raises_reset_needed(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    _, _, terminated, truncated, info = env.step(f"Goodbye! {STOP}")
    assert terminated and not truncated
    assert info["termination"] == "agent_stop"
    with pytest.raises(gym.error.ResetNeeded):
        env.step("are you there?")
    with pytest.raises(gym.error.ResetNeeded):
        env.unwrapped.step(call("calculate", expression="1"))
    env.reset()
    env.step("hello again")  # usable after a reset


def test_user_stop_ends_the_episode(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    _, reward, terminated, truncated, info = env.step("Is there anything else I can help you with?")
    assert terminated and not truncated
    assert info["termination"] == "user_stop"
    assert reward == 0.0 and info["reward_info"]["state_match"] is False


def test_truncation_at_max_steps(data_dir: Path) -> None:
    env = make(data_dir, max_steps=3)
    env.reset(options={"task_id": TASK_ID})
    for _ in range(2):
        _, _, terminated, truncated, info = env.step(call("calculate", expression="1 + 1"))
        assert not terminated and not truncated and "reward_info" not in info
    observation, reward, terminated, truncated, info = env.step("Hello?")
    assert truncated and not terminated
    assert isinstance(observation, str)
    assert info["termination"] == "max_steps"
    reward_info = info["reward_info"]
    assert reward == reward_info["reward"] == 0.0
    assert reward_info["state_match"] is False and reward_info["differing"]
    with pytest.raises(gym.error.ResetNeeded):
        env.step("Hello?")


# --- async twin -------------------------------------------------------------------------------------


def test_async_twin_matches_sync(data_dir: Path) -> None:
    sync_env = make(data_dir)
    sync_observations, sync_reward, sync_info = run_oracle(sync_env, TASK_ID)

    async def episode() -> tuple[list[str], float, dict[str, Any], list[dict[str, Any]]]:
        env = make(data_dir).unwrapped
        observation, info = await env.reset_async(options={"task_id": TASK_ID})
        agent = OracleAgent(env.domain.tools)
        agent.reset(info, env.task)
        observations = [observation]
        while True:
            observation, reward, terminated, truncated, info = await env.step_async(agent.act(observation))
            observations.append(observation)
            if terminated or truncated:
                return observations, float(reward), info, env.messages

    async_observations, async_reward, async_info, async_messages = asyncio.run(episode())
    assert async_observations == sync_observations
    assert async_reward == sync_reward == 1.0
    assert async_info["reward_info"] == sync_info["reward_info"]
    assert async_messages == sync_env.unwrapped.messages


def test_async_reset_with_seed_matches_sync(data_dir: Path) -> None:
    sync_result = make(data_dir).reset(seed=11)
    async_result = asyncio.run(make(data_dir).unwrapped.reset_async(seed=11))
    assert async_result[0] == sync_result[0]
    assert async_result[1]["task_id"] == sync_result[1]["task_id"]


# --- render -----------------------------------------------------------------------------------------


def test_render_ansi(data_dir: Path) -> None:
    env = make(data_dir, render_mode="ansi")
    observation, _ = env.reset(options={"task_id": TASK_ID})
    env.step(call("calculate", expression="6 * 7"))
    env.step("The answer is 42.")
    text = env.render()
    assert isinstance(text, str)
    assert observation in text
    assert "42.0" in text and "The answer is 42." in text and "calculate" in text
    assert env.render() == text  # ansi renders the whole transcript each time


def test_render_human_prints_on_reset_and_step(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = make(data_dir, render_mode="human")
    observation, _ = env.reset(options={"task_id": TASK_ID})
    assert observation in capsys.readouterr().out  # Gymnasium's human mode renders by itself
    env.step("Thanks, checking that now.")
    second = capsys.readouterr().out
    assert "Thanks, checking that now." in second
    assert observation not in second  # only what is new since the last render
    assert env.render() is None
    assert capsys.readouterr().out == ""  # nothing new to show


def test_no_render_mode_renders_nothing(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    assert env.render() is None
    assert capsys.readouterr().out == ""


# --- writes -----------------------------------------------------------------------------------------


def test_a_failing_write_leaves_the_state_unchanged(data_dir: Path) -> None:
    env = make(data_dir)
    env.reset(options={"task_id": TASK_ID})
    before = env.unwrapped._session.fork.state_hash()
    for action in (
        # delivered order: cannot be cancelled
        call("cancel_pending_order", order_id="#W2378156", reason="no longer needed"),
        # the new item is not a variant of the product
        call(
            "exchange_delivered_order_items",
            order_id="#W2378156",
            item_ids=["1151293680"],
            new_item_ids=["0000000000"],
            payment_method_id="credit_card_9513926",
        ),
        # refund to a payment method that is neither the original nor a gift card
        call(
            "return_delivered_order_items",
            order_id="#W2378156",
            item_ids=["1151293680"],
            payment_method_id="paypal_0000000",
        ),
    ):
        observation, *_ = env.step(action)
        assert observation.startswith("Error: ")
        assert env.unwrapped.state_diff() == {}
    assert env.unwrapped._session.fork.state_hash() == before


def test_a_write_failing_halfway_is_rolled_back(data_dir: Path) -> None:
    """A write tool that changes records and then fails must leave no partial change."""

    @tool(ToolKind.WRITE)
    def cancel_then_fail(db: Any, order_id: str) -> str:
        """Cancel an order, then fail.

        Args:
            order_id: the order id.
        """
        db.write("orders", order_id)["status"] = "cancelled"
        user = db.get("orders", order_id)["user_id"]
        db.write("users", user)["email"] = "changed@example.com"
        raise ToolError("something went wrong after writing")

    @tool(ToolKind.WRITE)
    def cancel_then_crash(db: Any, order_id: str) -> str:
        """Cancel an order, then crash.

        Args:
            order_id: the order id.
        """
        db.write("orders", order_id)["status"] = "cancelled"
        raise RuntimeError("bug in a tool")

    @tool(ToolKind.WRITE)
    def cancel(db: Any, order_id: str) -> str:
        """Cancel an order.

        Args:
            order_id: the order id.
        """
        db.write("orders", order_id)["status"] = "cancelled"
        return "done"

    domain = Domain(
        name="mock",
        tools=ToolSet([cancel_then_fail, cancel_then_crash, cancel]),
        policy=Policy(text="Be nice.", rules=()),
        tables=("users", "orders", "products"),
        home=data_dir,
    )
    task = Task(id="t", instruction="Cancel #W2378156.", actions=[Action(name="cancel", arguments={})])
    env = ApigenEnv(domain, data_dir=data_dir, tasks=[task])
    env.reset(seed=0)
    observation, *_ = env.step(call("cancel", order_id="#W5056519"))
    assert observation == "done"
    committed = env.state_diff()
    assert committed["orders"]["#W5056519"]["status"] == "cancelled"
    for name in ("cancel_then_fail", "cancel_then_crash"):
        observation, *_ = env.step(call(name, order_id="#W2378156"))
        assert observation.startswith("Error: ")
        assert env.state_diff() == committed


# --- vector envs ------------------------------------------------------------------------------------


def test_sync_vector_env(data_dir: Path) -> None:
    envs = gym.vector.SyncVectorEnv([lambda: make(data_dir), lambda: make(data_dir)])
    observations, infos = envs.reset(seed=[1, 2])
    assert len(observations) == 2 and all(isinstance(o, str) for o in observations)
    assert len(infos["task_id"]) == 2
    observations, rewards, terminated, truncated, infos = envs.step(
        ("Hello, how can I help?", call("calculate", expression="2 + 2"))
    )
    assert isinstance(observations[0], str) and observations[1] == "4.0"
    assert list(rewards) == [0.0, 0.0]
    assert not any(terminated) and not any(truncated)
    envs.close()


def test_async_vector_env_without_shared_memory(data_dir: Path) -> None:
    envs = gym.vector.AsyncVectorEnv([lambda: make(data_dir), lambda: make(data_dir)], shared_memory=False)
    try:
        observations, infos = envs.reset(seed=0)
        assert len(observations) == 2 and all(isinstance(o, str) and o for o in observations)
        observations, rewards, terminated, truncated, _ = envs.step(
            (call("calculate", expression="3 * 3"), f"Bye {STOP}")
        )
        assert observations[0] == "9.0"
        assert list(terminated) == [False, True]
        assert list(rewards) == [0.0, 0.0]
    finally:
        envs.close()


# --- pickling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["apigen/retail-v0", "apigen/airline-v0", "apigen/travel-v0"])
def test_envs_pickle_mid_episode_and_play_on(env_id: str) -> None:
    """Ray and multiprocessing ship envs by pickle: the copy plays on exactly as the original."""
    env = gym.make(env_id)
    _, info = env.reset(seed=7)
    agent = OracleAgent(env.unwrapped.domain.tools)
    agent.reset(info, env.unwrapped.task)
    observation = env.step(agent.act(""))[0]
    payload = pickle.dumps(env)
    assert len(payload) < 1_000_000  # the database travels by reference, not record by record
    copy = pickle.loads(payload)
    assert copy.unwrapped.database is env.unwrapped.database  # the process's own cached data
    assert copy.unwrapped.messages == env.unwrapped.messages
    twin = pickle.loads(pickle.dumps(agent))
    done = False
    while not done:
        action = agent.act(observation)
        assert twin.act(observation) == action
        observation, reward, terminated, truncated, _ = env.step(action)
        assert copy.step(action)[:4] == (observation, reward, terminated, truncated)
        done = terminated or truncated
    assert reward == 1.0 and copy.unwrapped.state_diff() == env.unwrapped.state_diff()


def double(db: Any, x: int) -> str:
    """Twice x."""
    return str(2 * x)


def test_a_tool_made_at_run_time_pickles() -> None:
    made = pickle.loads(pickle.dumps(Tool.from_function(double, ToolKind.READ, name="twice")))
    assert made.name == "twice" and made(None, {"x": 4}) == "8"  # type: ignore[arg-type]
