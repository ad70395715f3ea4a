"""Grouped rollouts with every kind of policy, and episodes rendered as token ids with a loss mask."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hf_tiny import tiny_tokenizer

from apigen_gym.core.env import ApigenEnv
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.loopback.server import LoopbackServer, ServerConfig
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.training.rollouts import RolloutGroup, Trajectory, rollout_group, rollout_groups, rollouts
from apigen_gym.training.tokens import tokenize_episode

ENV_ID = "apigen/retail-v0"
TASK = "retail-test-003"
GOODBYE = "Thank you, goodbye! ###STOP###"


def gold_calls(task_id: str = TASK) -> list[dict[str, Any]]:
    task = next(t for t in ApigenEnv("retail").tasks if t.id == task_id)
    return [{"name": a.name, "arguments": a.arguments} for a in task.actions]


def test_a_group_of_oracle_rollouts_carries_messages_tool_calls_and_rewards() -> None:
    tools = ApigenEnv("retail").domain.tools
    group = asyncio.run(rollout_group(ENV_ID, TASK, agent=lambda: OracleAgent(tools), size=4))
    assert group.task_id == TASK and len(group.trajectories) == 4
    assert group.rewards == [1.0] * 4 and group.advantages() == [0.0] * 4
    for index, trajectory in enumerate(group.trajectories):
        assert trajectory.trial == index and trajectory.termination == "user_stop"
        assert trajectory.reward_info["reward"] == 1.0 and trajectory.messages[0]["role"] == "system"
        calls = [{"name": c["name"], "arguments": json.loads(c["arguments"])} for c in trajectory.tool_calls]
        assert calls == gold_calls() and all(c["output"] for c in trajectory.tool_calls)


def test_a_policy_function_sync_or_async_with_rewards_that_differ_in_the_group() -> None:
    """Every other rollout gives up at once: the group's advantages are +1 and -1."""
    gold = gold_calls()
    started = [0]

    def policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        assert tools and messages[0]["role"] == "system"
        made = sum(m["role"] == "tool" for m in messages)
        if not any(m["role"] == "assistant" for m in messages):
            started[0] += 1
            if started[0] % 2 == 0:
                return GOODBYE
        return json.dumps(gold[made]) if made < len(gold) else GOODBYE

    async def async_policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        await asyncio.sleep(0)
        return policy(messages, tools)

    for chosen in (policy, async_policy):
        group = asyncio.run(rollout_group(ENV_ID, TASK, chosen, size=4, concurrency=1))
        assert group.rewards == [1.0, 0.0, 1.0, 0.0]  # gold calls without dialogue: the state still matches
        assert [round(a, 3) for a in group.advantages()] == [1.0 if r else -1.0 for r in group.rewards]
        assert group.advantages(scale=False) == [r - 0.5 for r in group.rewards]


def test_many_groups_in_one_call_and_from_synchronous_code() -> None:
    tools = ApigenEnv("retail").domain.tools
    ids = ["retail-test-000", "retail-test-001", "retail-test-002"]
    groups = rollouts(ENV_ID, ids, agent=lambda: OracleAgent(tools), size=2, concurrency=3)
    assert [g.task_id for g in groups] == ids and all(g.rewards == [1.0, 1.0] for g in groups)
    partial = asyncio.run(
        rollout_groups(
            lambda: ApigenEnv("retail", reward_mode="partial"), ids[:1], lambda m, t: GOODBYE, size=2
        )
    )
    assert partial[0].trajectories[0].reward_info["reward_mode"] == "partial"


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(TypeError, match="exactly one"):
        asyncio.run(rollout_group(ENV_ID, TASK))
    with pytest.raises(TypeError, match="factory"):
        asyncio.run(rollout_group(ENV_ID, TASK, OracleAgent(ApigenEnv("retail").domain.tools)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        asyncio.run(rollout_group(ENV_ID, TASK, lambda m, t: GOODBYE, size=0))
    with pytest.raises(Exception, match="unknown env"):
        asyncio.run(rollout_group("apigen/bank-v0", TASK, lambda m, t: GOODBYE))


def test_a_model_through_the_llm_layer_on_the_loopback_server() -> None:
    async def run(base_url: str) -> list[RolloutGroup]:
        client = LLMClient(LLMSettings(model="oracle", base_url=base_url, api_key="x", backoff_base=0.001))
        try:
            return await rollout_groups(ENV_ID, ["retail-test-000", TASK], client, size=3)
        finally:
            await client.aclose()

    with LoopbackServer(ServerConfig()) as server:
        groups = asyncio.run(run(server.base_url))
    for group in groups:
        assert group.rewards == [1.0, 1.0, 1.0] and all(t.agent == "tool-calling" for t in group.trajectories)
        assert all(t.usage.total_tokens > 0 and t.tool_calls for t in group.trajectories)


# --- token ids and loss masks ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def episode() -> tuple[Trajectory, list[dict[str, Any]]]:
    env = ApigenEnv("retail")
    group = asyncio.run(rollout_group(ENV_ID, TASK, agent=lambda: OracleAgent(env.domain.tools), size=1))
    return group.trajectories[0], env.tools


def render(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, generation_prompt: bool) -> list[int]:
    from apigen_gym.training.tokens import chat_messages

    return list(
        tokenizer.apply_chat_template(
            chat_messages(messages),
            tools=tools,
            tokenize=True,
            add_generation_prompt=generation_prompt,
            return_dict=False,
        )
    )


def test_token_masks_are_prefix_consistent_with_the_template_turn_by_turn(episode: Any) -> None:
    trajectory, tools = episode
    tokenizer = tiny_tokenizer()
    tokens = trajectory.tokenize(tokenizer, tools)
    messages = trajectory.messages
    ids = tokens.input_ids
    assert len(tokens.loss_mask) == len(tokens.completion_ids)
    assert ids == render(tokenizer, messages, tools, False)
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    assert tokens.prompt_ids == render(tokenizer, messages[:first], tools, True)
    mask = [0] * len(tokens.prompt_ids) + tokens.loss_mask
    written_by_model: set[int] = set()
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:index], tools, True)  # where the model starts writing
        after = render(tokenizer, messages[: index + 1], tools, False)
        assert ids[: len(before)] == before and ids[: len(after)] == after, index
        text = tokenizer.decode(ids[len(before) : len(after)])
        assert (message["content"] or "") in text and text.endswith("<|im_end|>\n"), text
        span = range(len(before), len(after) - 1)  # up to <|im_end|>; the newline after it is glue
        assert all(mask[i] for i in span) and not mask[len(after) - 1], index
        written_by_model.update(span)
    assert len(written_by_model) > 100 and sum(tokens.loss_mask) == len(written_by_model)
    masked = tokenizer.decode([t for t, m in zip(tokens.completion_ids, tokens.loss_mask) if m])
    assert "<|im_start|>" not in masked and "<tool_response>" not in masked  # headers and tool results


def test_a_template_that_is_not_prefix_preserving_is_refused(episode: Any) -> None:
    trajectory, tools = episode
    dropping = "{% for m in messages[-2:] %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    with pytest.raises(ValueError, match="not prefix-preserving"):
        tokenize_episode(trajectory.messages, tiny_tokenizer(), chat_template=dropping)


def test_arguments_that_are_not_json_are_rendered_as_text() -> None:
    messages = [
        {"role": "system", "content": "policy"},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "think", "arguments": "{oops"}}
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "c1",
            "name": "think",
            "content": "Error: arguments are not valid JSON",
        },
        {"role": "assistant", "content": "Sorry."},
    ]
    tokenizer = tiny_tokenizer()
    tokens = tokenize_episode(messages, tokenizer)
    assert "{oops" in tokenizer.decode(tokens.completion_ids)
    assert tokens.input_ids == render(tokenizer, messages, None, False)
