"""LLM users (plain and best-of-N with a critic) and LLM agents (tool calling, ReAct).

Model calls go through :class:`LLMClient` and the real ``openai`` client to the loopback server's
scripted models; a few tests use a recording stub client to pin down exactly what is sent.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest

import apigen_gym  # noqa: F401  (registers the envs)
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.tools import ERROR_PREFIX
from apigen_gym.core.user import STOP
from apigen_gym.evaluation.runner import run_episode_async
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings, Price
from apigen_gym.llm.types import Completion, Usage
from apigen_gym.loopback.server import LoopbackServer, ServerConfig
from apigen_gym.players.llm_users import AGENT_GREETING, BestOfNUser, LLMUser, parse_score
from apigen_gym.players.model_agents import (
    REACT_FORMAT,
    RESPOND,
    ReActAgent,
    ToolCallingAgent,
    describe_tools,
    parse_react,
    react_messages,
)
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.players.scripted_user import ScriptedUser

TASKS = ("retail-test-000", "retail-test-001", "retail-test-002", "retail-test-005")


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(ServerConfig()) as running:
        yield running


@pytest.fixture(scope="module")
def env() -> ApigenEnv:
    return ApigenEnv("retail", split="test")


def client(server: LoopbackServer, model: str, **kwargs: Any) -> LLMClient:
    return LLMClient(LLMSettings(model=model, base_url=server.base_url, backoff_base=0.001, **kwargs))


def new_env(env: ApigenEnv, **kwargs: Any) -> ApigenEnv:
    """An env sharing the module env's domain and database (cheap to make)."""
    return ApigenEnv(env.domain, database=env.database, split="test", **kwargs)


def play(env: ApigenEnv, task_id: str, agent: Any = None) -> float:
    """One episode with the oracle agent (or ``agent``), synchronously; the reward."""
    observation, info = env.reset(options={"task_id": task_id})
    agent = agent or OracleAgent(env.domain.tools)
    agent.reset(info, env.task, env)
    while True:
        observation, reward, terminated, truncated, _ = env.step(agent.act(observation))
        if terminated or truncated:
            return float(reward)


async def play_async(env: ApigenEnv, task_id: str, agent: Any = None) -> float:
    observation, info = await env.reset_async(options={"task_id": task_id})
    agent = agent or OracleAgent(env.domain.tools)
    agent.reset(info, env.task, env)
    while True:
        action = await agent.act_async(observation)
        observation, reward, terminated, truncated, _ = await env.step_async(action)
        if terminated or truncated:
            return float(reward)


class StubClient:
    """Answers with canned assistant messages and records what it was asked (no server)."""

    def __init__(self, *messages: dict[str, Any], usage: Usage | None = None, cost: float = 0.0):
        self.answers = list(messages)
        self.requests: list[dict[str, Any]] = []
        self.usage = usage or Usage(prompt_tokens=5, completion_tokens=2)
        self.cost = cost

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> Completion:
        self.requests.append({"messages": [dict(m) for m in messages], "tools": tools, **params})
        message = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return Completion(message=message, usage=self.usage, cost=self.cost)


# --- the LLM user -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", TASKS)
def test_llm_user_plays_a_task_to_reward_1(server: LoopbackServer, env: ApigenEnv, task_id: str) -> None:
    user = LLMUser(client(server, "scripted-user"))
    llm_env = new_env(env, user=user)
    assert play(llm_env, task_id) == 1.0
    assert llm_env.termination in ("user_stop", "agent_stop", "transfer")
    assert user.usage.prompt_tokens > 0 and user.usage.completion_tokens > 0 and user.cost == 0.0
    # the model played the customer exactly as the offline scripted user does
    scripted_env = new_env(env, user=ScriptedUser())
    assert play(scripted_env, task_id) == 1.0
    assert llm_env.messages == scripted_env.messages


def test_llm_user_async_episodes_run_concurrently(server: LoopbackServer, env: ApigenEnv) -> None:
    shared = client(server, "scripted-user", prices={"scripted-user": Price(prompt=1.0, completion=1.0)})
    users = [LLMUser(shared) for _ in TASKS]
    envs = [new_env(env, user=user) for user in users]

    async def all_episodes() -> list[float]:
        try:
            return list(await asyncio.gather(*(play_async(e, t) for e, t in zip(envs, TASKS))))
        finally:
            await shared.aclose()

    assert asyncio.run(all_episodes()) == [1.0] * len(TASKS)
    assert all(u.usage.total_tokens > 0 and u.cost > 0 for u in users)
    total = Usage()
    for u in users:
        total = total + u.usage
    assert shared.usage == total
    assert shared.cost == pytest.approx(sum(u.cost for u in users))
    assert shared.calls == sum(sum(1 for m in e.messages if m["role"] == "user") for e in envs)


def test_llm_user_usage_goes_into_the_episode_result(server: LoopbackServer, env: ApigenEnv) -> None:
    user_client = client(server, "scripted-user")
    llm_env = new_env(env, user=LLMUser(user_client))

    async def episode() -> Any:
        try:
            return await run_episode_async(llm_env, OracleAgent(env.domain.tools), "retail-test-001", seed=0)
        finally:
            await user_client.aclose()

    result = asyncio.run(episode())
    assert result.reward == 1.0 and result.error is None and result.user == "llm"
    assert result.usage == user_client.usage and result.usage.total_tokens > 0


def test_an_llm_user_answer_without_text_is_never_an_empty_turn(env: ApigenEnv) -> None:
    """Malformed answers (a tool call, no text) are retried; when every one is, the episode ends with
    a labelled infrastructure error instead of an empty customer message."""
    with LoopbackServer(ServerConfig(rate_malformed=1.0)) as broken:
        user_client = client(broken, "scripted-user", max_retries=2)
        llm_env = new_env(env, user=LLMUser(user_client))

        async def episode() -> Any:
            try:
                return await run_episode_async(llm_env, OracleAgent(env.domain.tools), "retail-test-001")
            finally:
                await user_client.aclose()

        result = asyncio.run(episode())
        assert broken.stats()["faults"]["malformed"] == 3
    assert result.error == "infrastructure: EmptyAnswer (no text in the answer) after 3 attempts"
    assert result.reward == 0.0 and result.termination == "error"
    assert not any(m["role"] == "user" and not m["content"] for m in result.messages)


def test_llm_user_prompt_has_the_instruction_and_flipped_roles(env: ApigenEnv) -> None:
    stub = StubClient({"role": "assistant", "content": "  Hi, I need help.  "})
    user = LLMUser(stub)  # type: ignore[arg-type]
    task = env.tasks[1]
    assert user.start(task, seed=11) == "Hi, I need help."
    assert user.respond("What is your name?") == "Hi, I need help."
    first, second = stub.requests
    system = first["messages"][0]
    assert system["role"] == "system" and task.instruction in system["content"] and STOP in system["content"]
    assert first["messages"][1:] == [{"role": "user", "content": AGENT_GREETING}]
    assert first["seed"] == 11 and first["tools"] is None
    assert second["messages"][1:] == [
        {"role": "user", "content": AGENT_GREETING},
        {"role": "assistant", "content": "Hi, I need help."},
        {"role": "user", "content": "What is your name?"},
    ]
    assert user.usage == Usage(prompt_tokens=10, completion_tokens=4)
    user.start(task)  # a new conversation starts the count again
    assert user.usage == Usage(prompt_tokens=5, completion_tokens=2)


# --- best of N with a critic --------------------------------------------------------------------------


class SteeredCandidates:
    """The user model, steered: candidate ``i`` (seed ``base + i``) ends with ``APIGEN_SCORE=scores[i]``.

    The candidates come back from the loopback server's ``echo`` model, so they are real calls; the
    ``critic`` model then reads the keyword (the last one in its prompt is the candidate's).
    """

    def __init__(self, inner: LLMClient, scores: list[int], base: int):
        self.inner, self.scores, self.base = inner, scores, base

    async def complete(self, messages: list[dict[str, Any]], tools: Any = None, **params: Any) -> Completion:
        index = params["seed"] - self.base
        steer = {"role": "user", "content": f"candidate {index} APIGEN_SCORE={self.scores[index]}"}
        return await self.inner.complete([*messages, steer], tools, **params)


@pytest.mark.parametrize(
    ("scores", "best", "parsed"),
    [
        ([3, 9, 5, 7], 1, [3, 9, 5, 7]),
        ([4, 8, 2, 8], 1, [4, 8, 2, 8]),  # a tie goes to the first
        ([0, -2, 15, 10], 2, [0, 0, 10, 10]),  # scores are clamped to 0..10
    ],
)
def test_best_of_n_sends_the_best_scored_candidate(
    server: LoopbackServer, env: ApigenEnv, scores: list[int], best: int, parsed: list[int]
) -> None:
    prices = {"echo": Price(prompt=1.0, completion=1.0), "critic": Price(prompt=2.0, completion=2.0)}
    candidates = client(server, "echo", prices=prices)
    critic = client(server, "critic", prices=prices)
    user = BestOfNUser(SteeredCandidates(candidates, scores, base=100), critic, n=4)  # type: ignore[arg-type]

    async def opening() -> str:
        try:
            return await user.start_async(env.tasks[0], seed=100)
        finally:
            await candidates.aclose()
            await critic.aclose()

    reply = asyncio.run(opening())
    assert reply == f"candidate {best} APIGEN_SCORE={scores[best]}"
    assert user.last_scores == [float(s) for s in parsed]
    assert candidates.calls == 4 and critic.calls == 4  # every call is counted...
    assert user.usage == candidates.usage + critic.usage  # ...in the user's usage and cost
    assert user.cost == pytest.approx(candidates.cost + critic.cost) and user.cost > 0


def test_best_of_n_plays_an_episode_and_counts_every_call(server: LoopbackServer, env: ApigenEnv) -> None:
    candidates, critic = client(server, "scripted-user"), client(server, "critic")
    user = BestOfNUser(candidates, critic, n=3)
    best_env = new_env(env, user=user)
    assert play(best_env, "retail-test-001") == 1.0
    turns = sum(1 for m in best_env.messages if m["role"] == "user")
    assert candidates.calls == 3 * turns and critic.calls == 3 * turns
    assert user.usage == candidates.usage + critic.usage
    assert user.last_scores == [10.0, 10.0, 10.0]  # the scripted critic's default


def test_best_of_one_asks_no_critic(env: ApigenEnv) -> None:
    stub = StubClient({"role": "assistant", "content": "Hello."})
    critic = StubClient({"role": "assistant", "content": '{"score": 1}'})
    user = BestOfNUser(stub, critic, n=1)  # type: ignore[arg-type]
    assert user.start(env.tasks[0]) == "Hello."
    assert len(stub.requests) == 1 and critic.requests == []
    with pytest.raises(ValueError, match="N ≥ 1"):
        BestOfNUser(stub, n=0)  # type: ignore[arg-type]


def test_best_of_n_candidates_get_distinct_seeds_and_the_critic_sees_the_situation(env: ApigenEnv) -> None:
    stub = StubClient({"role": "assistant", "content": "A candidate."})
    critic = StubClient({"role": "assistant", "content": '{"score": 5, "reason": "ok"}'})
    user = BestOfNUser(stub, critic, n=3)  # type: ignore[arg-type]
    user.start(env.tasks[0], seed=40)
    assert sorted(r["seed"] for r in stub.requests) == [40, 41, 42]
    review = critic.requests[0]["messages"]
    assert review[0]["role"] == "system" and "score" in review[0]["content"]
    assert env.tasks[0].instruction in review[1]["content"] and "A candidate." in review[1]["content"]
    assert critic.requests[0]["temperature"] == 0.0


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ('{"score": 7, "reason": "fine"}', 7.0),
        ('{"score": "8"}', 8.0),
        ('{"score": 6.5}', 6.5),
        ('{"score": 15}', 10.0),
        ('{"score": -3}', 0.0),
        ("9", 9.0),
        ("Score: 4/10 - decent", 4.0),
        ('```json\n{"score": 3, "reason": "x"}\n```', 3.0),
        ('{"reason": "no score here"}', 0.0),
        ('{"score": null}', 0.0),
        ("no number at all", 0.0),
        ("", 0.0),
    ],
)
def test_parse_score(text: str, score: float) -> None:
    assert parse_score(text) == score


@pytest.mark.parametrize("text", ['{"score": NaN}', '{"score": "nan"}'])
def test_parse_score_nan_is_no_score(text: str) -> None:
    assert parse_score(text) == 0.0


# --- the tool-calling agent ---------------------------------------------------------------------------


def test_tool_calling_agent_with_the_oracle_model_reaches_reward_1(
    server: LoopbackServer, env: ApigenEnv
) -> None:
    model = client(server, "oracle")

    async def episodes() -> list[Any]:
        try:
            return list(
                await asyncio.gather(
                    *(run_episode_async(new_env(env), ToolCallingAgent(model), t, seed=0) for t in TASKS)
                )
            )
        finally:
            await model.aclose()

    results = asyncio.run(episodes())
    assert [r.reward for r in results] == [1.0] * len(TASKS)
    assert all(r.error is None and r.agent == "tool-calling" for r in results)
    assert all(r.usage.total_tokens > 0 for r in results)
    total = Usage()
    for r in results:
        total = total + r.usage
    assert total == model.usage  # the scripted user spends nothing
    assert any(m.get("tool_calls") for m in results[0].messages)


def test_tool_calling_agent_sync(server: LoopbackServer, env: ApigenEnv) -> None:
    agent = ToolCallingAgent(client(server, "oracle"))
    assert play(new_env(env), "retail-test-001", agent) == 1.0
    assert agent.usage.total_tokens > 0


def test_tool_calling_agent_sends_the_env_conversation_and_tools(env: ApigenEnv) -> None:
    stub = StubClient({"role": "assistant", "content": "Hello!"}, usage=Usage(prompt_tokens=3), cost=0.25)
    agent = ToolCallingAgent(stub)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="env"):
        agent.reset({})
    with pytest.raises(RuntimeError, match="reset"):
        agent.act("hi")
    local = new_env(env)
    observation, info = local.reset(options={"task_id": "retail-test-000"})
    agent.reset(info, local.task, local)
    assert agent.act(observation) == {"role": "assistant", "content": "Hello!"}
    assert stub.requests[0]["messages"] == local.messages and stub.requests[0]["tools"] == local.tools
    assert agent.usage == Usage(prompt_tokens=3) and agent.cost == 0.25


def test_two_tool_calls_in_one_message_run_in_order(env: ApigenEnv) -> None:
    new_address = {
        "order_id": "#W8620035",
        "address1": "1727 Highland Avenue",
        "address2": "",
        "city": "Raleigh",
        "state": "NC",
        "country": "USA",
        "zip": "27651",
    }
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_write",
                "type": "function",
                "function": {"name": "modify_pending_order_address", "arguments": json.dumps(new_address)},
            },
            {
                "id": "call_read",
                "type": "function",
                "function": {"name": "get_order_details", "arguments": '{"order_id": "#W8620035"}'},
            },
        ],
    }
    local = new_env(env)
    observation, info = local.reset(options={"task_id": "retail-test-001"})
    before = json.loads(
        local.step('{"name": "get_order_details", "arguments": {"order_id": "#W8620035"}}')[0]
    )
    assert before["address"]["address1"] != "1727 Highland Avenue"
    agent = ToolCallingAgent(StubClient(message))  # type: ignore[arg-type]
    agent.reset(info, local.task, local)
    observation, _, terminated, _, _ = local.step(agent.act(observation))
    assert not terminated
    assistant, write, read = local.messages[-3:]
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_write", "call_read"]
    assert (write["role"], write["tool_call_id"], write["name"]) == (
        "tool",
        "call_write",
        "modify_pending_order_address",
    )
    assert (read["role"], read["tool_call_id"], read["name"]) == ("tool", "call_read", "get_order_details")
    assert json.loads(read["content"])["address"]["address1"] == "1727 Highland Avenue"  # the write ran first
    assert observation == f"{write['content']}\n\n{read['content']}"


# --- ReAct ----------------------------------------------------------------------------------------------


def test_parse_react_respond_action() -> None:
    text = (
        "Thought: greet them.\n"
        'Action: {"name": "respond", "arguments": {"content": "Hello! How can I help?"}}'
    )
    assert parse_react(text) == "Hello! How can I help?"
    assert parse_react('Action: {"name": "respond", "arguments": "plain words"}') == "plain words"
    assert parse_react('Action: {"name": "respond", "arguments": {}}') == ""


def test_parse_react_tool_action() -> None:
    text = (
        "Thought: I should look the user up. Action: is what I take next.\n"
        'Action: {"name": "find_user_id_by_email", "arguments": {"email": "a@b.com"}}\n'
    )
    action = parse_react(text)
    assert isinstance(action, str)
    assert json.loads(action) == {"name": "find_user_id_by_email", "arguments": {"email": "a@b.com"}}


def test_parse_react_malformed_json_goes_to_the_env_as_an_error(env: ApigenEnv) -> None:
    text = 'Thought: look up.\nAction: {"name": "get_order_details", "arguments": {"order_id": "#W1"}'
    action = parse_react(text)
    assert action == '{"name": "get_order_details", "arguments": {"order_id": "#W1"}'
    local = new_env(env)
    local.reset(options={"task_id": "retail-test-000"})
    observation, _, terminated, _, _ = local.step(action)
    assert observation.startswith(ERROR_PREFIX) and "malformed" in observation and not terminated


def test_parse_react_without_an_action_is_a_message() -> None:
    assert parse_react("  I can help with that.  ") == "I can help with that."
    assert parse_react("Thought: hmm.\nAction: none") == "Thought: hmm.\nAction: none"


def test_react_messages_rewrite_the_conversation(env: ApigenEnv) -> None:
    tools = env.tools
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "POLICY"},
        {"role": "user", "content": "Hi, my email is a@b.com."},
        {"role": "assistant", "content": "Let me check."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "find_user_id_by_email", "arguments": '{"email": "a@b.com"}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "think", "arguments": "{broken"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "name": "find_user_id_by_email", "content": "user_1"},
        {"role": "tool", "tool_call_id": "c2", "name": "think", "content": "Error: bad"},
    ]
    out = react_messages(messages, tools)
    assert [m["role"] for m in out] == [
        "system",
        "user",
        "assistant",
        "assistant",
        "assistant",
        "user",
        "user",
    ]
    assert out[0]["content"] == "POLICY" + REACT_FORMAT.format(tools=describe_tools(tools))
    assert "find_user_id_by_email" in out[0]["content"] and "Action:" in out[0]["content"]
    assert out[1] == {"role": "user", "content": "Hi, my email is a@b.com."}
    respond = json.loads(out[2]["content"].removeprefix("Action: "))
    assert respond == {"name": RESPOND, "arguments": {"content": "Let me check."}}
    call = json.loads(out[3]["content"].removeprefix("Action: "))
    assert call == {"name": "find_user_id_by_email", "arguments": {"email": "a@b.com"}}
    assert json.loads(out[4]["content"].removeprefix("Action: ")) == {"name": "think", "arguments": "{broken"}
    assert out[5:] == [
        {"role": "user", "content": "Observation: user_1"},
        {"role": "user", "content": "Observation: Error: bad"},
    ]
    assert all("tool_calls" not in m for m in out)
    # what the agent once said parses back to the same action
    assert parse_react(out[2]["content"]) == "Let me check."
    assert json.loads(parse_react(out[3]["content"])) == call


def test_react_agent_acts_through_the_env(env: ApigenEnv) -> None:
    answer = (
        "Thought: look the user up.\nAction: "
        '{"name": "find_user_id_by_email", "arguments": {"email": "lucia.hoffman8162@example.com"}}'
    )
    stub = StubClient({"role": "assistant", "content": answer})
    agent = ReActAgent(stub)  # type: ignore[arg-type]
    local = new_env(env)
    observation, info = local.reset(options={"task_id": "retail-test-000"})
    agent.reset(info, local.task, local)
    observation, *_ = local.step(agent.act(observation))
    assert observation == "lucia_hoffman_5100"
    sent = stub.requests[0]
    assert sent["tools"] is None and "# How to answer" in sent["messages"][0]["content"]
    assert agent.usage == stub.usage


def test_react_agent_through_the_server(server: LoopbackServer, env: ApigenEnv) -> None:
    """The chatty model writes plain text: the ReAct agent passes it to the user as a message."""
    agent = ReActAgent(client(server, "chatty"))
    local = new_env(env)
    assert play(local, "retail-test-005", agent) == 1.0  # no write, no output: talking is enough
    assert local.termination == "agent_stop" and agent.usage.total_tokens > 0
    assert not any(m.get("tool_calls") for m in local.messages)


# --- env kwargs -----------------------------------------------------------------------------------------


def test_gym_make_builds_an_llm_user(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    made = gym.make("apigen/retail-v0", user="llm", user_model="scripted-user", base_url=server.base_url)
    inner = made.unwrapped
    assert isinstance(inner, ApigenEnv)
    user = inner.user
    assert isinstance(user, LLMUser) and not isinstance(user, BestOfNUser)
    assert user.client.settings.model == "scripted-user"
    assert user.client.settings.base_url == server.base_url
    observation, info = made.reset(options={"task_id": "retail-test-001"})
    agent = OracleAgent(inner.domain.tools)
    agent.reset(info, inner.task, inner)
    while True:
        observation, reward, terminated, truncated, _ = made.step(agent.act(observation))
        if terminated or truncated:
            break
    assert reward == 1.0 and user.usage.total_tokens > 0

    best = gym.make(
        "apigen/retail-v0", user="llm", user_model="echo", base_url=server.base_url, user_best_of=3
    )
    assert isinstance(best.unwrapped.user, BestOfNUser) and best.unwrapped.user.n == 3  # type: ignore[attr-defined]

    monkeypatch.setenv("OPENAI_MODEL", "scripted-user")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    from_env = gym.make("apigen/retail-v0", user="llm")
    assert from_env.unwrapped.user.client.settings.model == "scripted-user"  # type: ignore[attr-defined]
    monkeypatch.delenv("OPENAI_MODEL")
    with pytest.raises(ValueError, match="no model: pass user_model="):
        gym.make("apigen/retail-v0", user="llm", base_url=server.base_url)


# --- across processes ---------------------------------------------------------------------------------


ASK = "Could you tell me your email address, or your name and zip code?"


def test_forked_children_run_llm_users_after_the_parent_did(server: LoopbackServer) -> None:
    """The background loop that runs sync LLM calls is per process: a forked child starts its own."""

    def make() -> gym.Env:
        return gym.make("apigen/retail-v0", user="llm", user_model="scripted-user", base_url=server.base_url)

    parent = make()
    opening, _ = parent.reset(options={"task_id": "retail-test-001"})  # the parent's loop is running
    envs = gym.vector.AsyncVectorEnv([make, make], shared_memory=False, context="fork")
    try:
        envs.reset_async(options={"task_id": "retail-test-001"})
        observations, _ = envs.reset_wait(timeout=60)
        assert list(observations) == [opening, opening]
        envs.step_async([ASK] * 2)
        observations, *_ = envs.step_wait(timeout=60)
        assert observations[0] == observations[1] and observations[0].strip()
    finally:
        envs.close(terminate=True)
    assert (
        parent.step("Could you tell me your email address, or your name and zip code?")[0] == observations[0]
    )


def test_an_llm_user_env_pickles_after_its_calls_and_plays_on(server: LoopbackServer) -> None:
    made = gym.make("apigen/retail-v0", user="llm", user_model="scripted-user", base_url=server.base_url)
    observation, info = made.reset(options={"task_id": "retail-test-001"})
    copy = pickle.loads(pickle.dumps(made))  # the client's open connections stay behind
    agent = OracleAgent(copy.unwrapped.domain.tools)
    agent.reset(info, copy.unwrapped.task, copy.unwrapped)
    done = False
    while not done:
        observation, reward, terminated, truncated, _ = copy.step(agent.act(observation))
        done = terminated or truncated
    assert reward == 1.0


# --- closing ------------------------------------------------------------------------------------------

CLOSING = """
import sys
import gymnasium as gym
import apigen_gym
from apigen_gym.core.env import ApigenEnv

url, how = sys.argv[1], sys.argv[2]
if how == "not closed":
    ApigenEnv.close = gym.Env.close  # what env.close() did before it closed the user


def make():
    return gym.make("apigen/retail-v0", user="llm", user_model="scripted-user", base_url=url)


def play():
    if how == "vector":  # forked workers: each makes, plays and closes its own env
        envs = gym.vector.AsyncVectorEnv([make, make], shared_memory=False, context="fork")
        envs.reset(options={"task_id": "retail-test-001"})
        envs.step(["Could you tell me your email address?"] * 2)
        envs.close()
        return
    env = make()
    env.reset(options={"task_id": "retail-test-001"})
    env.step("Could you tell me your email address?")
    env.close()


play()  # the env is collected when play returns, as at the end of a worker
print("done")
"""


def run_closing(server: LoopbackServer, how: str) -> str:
    """What a process that plays one step with an LLM user says on stderr, to its end."""
    done = subprocess.run(
        [sys.executable, "-c", CLOSING, server.base_url, how], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    return done.stderr


def test_closing_the_env_closes_the_connections_of_the_llm_user_it_made(server: LoopbackServer) -> None:
    assert "Unclosed client session" in run_closing(server, "not closed")  # what closing prevents
    assert "Unclosed" not in run_closing(server, "closed")
    assert "Unclosed" not in run_closing(server, "vector")  # each forked worker closes its own env


def test_a_user_passed_in_is_the_callers_to_close(server: LoopbackServer) -> None:
    async def go() -> tuple[bool, bool]:
        mine = LLMUser(client(server, "scripted-user"))
        env = ApigenEnv("retail", user=mine)
        await env.reset_async(options={"task_id": "retail-test-001"})
        await env.close_async()
        kept = bool(mine.client._channels)  # the caller's client still holds its connections
        made = gym.make("apigen/retail-v0", user="llm", user_model="scripted-user", base_url=server.base_url)
        inner = made.unwrapped
        assert isinstance(inner, ApigenEnv)
        await inner.reset_async(options={"task_id": "retail-test-001"})
        await inner.close_async()
        user = inner.user
        assert isinstance(user, LLMUser)
        await mine.client.aclose()
        return kept, bool(user.client._channels)

    kept, left = asyncio.run(go())
    assert kept and not left
