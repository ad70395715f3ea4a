"""The loopback OpenAI-compatible server, driven by the real ``openai`` client over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageToolCall

from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.user import STOP
from apigen_gym.loopback.config import SHAPES, rate_field
from apigen_gym.loopback.models import CHATTY_QUESTIONS, GOODBYE
from apigen_gym.loopback.server import (
    FAULTS,
    LoopbackServer,
    ServerConfig,
    check_host,
    main,
    start_server_process,
)
from apigen_gym.players.scripted_user import ScriptedUser

HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    """A server with no latency and no random faults, over the shipped retail tasks."""
    with LoopbackServer(ServerConfig(timeout_sleep=30.0)) as running:
        yield running


def client_of(server: LoopbackServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, **kwargs)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def run_episode(env: ApigenEnv, client: openai.OpenAI, model: str, task_id: str) -> tuple[float, str]:
    """Play one episode with ``model`` as the agent; the reward and the termination reason."""
    env.reset(options={"task_id": task_id})
    while True:
        response = client.chat.completions.create(model=model, messages=env.messages, tools=env.tools)
        _, reward, terminated, truncated, info = env.step(response.choices[0].message)
        if terminated or truncated:
            return float(reward), str(info["termination"])


# --- the protocol -----------------------------------------------------------------------------------


def test_plain_completion(server: LoopbackServer) -> None:
    response = client_of(server).chat.completions.create(model="echo", messages=HELLO)
    assert response.object == "chat.completion" and response.id.startswith("chatcmpl-")
    assert response.model == "echo" and response.created > 0
    choice = response.choices[0]
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content == "hello there"
    assert choice.message.tool_calls is None
    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_models_health_and_unknown_model(server: LoopbackServer) -> None:
    client = client_of(server)
    assert {m.id for m in client.models.list()} == {
        "oracle",
        "chatty",
        "scripted-user",
        "critic",
        "echo",
        "json",
    }
    assert get_json(f"{server.url}/health") == {"status": "ok"}
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-9", messages=HELLO)
    error = raised.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found" and "gpt-9" in error["message"]
    assert raised.value.response.json()["error"]["type"] == "invalid_request_error"


def test_bad_requests_get_400(server: LoopbackServer) -> None:
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 400
    assert json.loads(raised.value.read())["error"]["code"] == "invalid_json"
    with pytest.raises(openai.BadRequestError, match="X-Apigen-Fault"):
        client_of(server).chat.completions.create(
            model="echo", messages=HELLO, extra_headers={"X-Apigen-Fault": "meteor"}
        )


def test_tool_call_parses_into_openai_types(server: LoopbackServer) -> None:
    env = ApigenEnv("retail", split="test")
    env.reset(options={"task_id": "retail-test-000"})
    client = client_of(server)
    first = client.chat.completions.create(model="oracle", messages=env.messages, tools=env.tools)
    assert first.choices[0].finish_reason == "stop" and "email" in (first.choices[0].message.content or "")
    env.step(first.choices[0].message)
    second = client.chat.completions.create(model="oracle", messages=env.messages, tools=env.tools)
    assert second.choices[0].finish_reason == "tool_calls"
    (tool_call,) = second.choices[0].message.tool_calls or []
    assert isinstance(tool_call, ChatCompletionMessageToolCall)
    assert tool_call.id.startswith("call_") and tool_call.type == "function"
    assert tool_call.function.name == "find_user_id_by_email"
    assert json.loads(tool_call.function.arguments) == {"email": "lucia.hoffman8162@example.com"}
    again = client.chat.completions.create(model="oracle", messages=env.messages, tools=env.tools)
    assert (again.choices[0].message.tool_calls or [])[0].id != tool_call.id  # fresh ids


# --- faults -----------------------------------------------------------------------------------------


def assert_fault(client: openai.OpenAI, fault: str, **kwargs: Any) -> None:
    """One request answered with ``fault``, seen through the openai client."""
    create = client.chat.completions.create
    if fault == "429":
        with pytest.raises(openai.RateLimitError) as raised:
            create(model="echo", messages=HELLO, **kwargs)
        assert 0 < float(raised.value.response.headers["retry-after-ms"]) <= 1000
        assert 0 < float(raised.value.response.headers["retry-after"]) <= 1
    elif fault == "500":
        with pytest.raises(openai.InternalServerError):
            create(model="echo", messages=HELLO, **kwargs)
    elif fault == "unreadable":  # llama.cpp's answer when its parser cannot read the model's output
        with pytest.raises(openai.InternalServerError) as failed:
            create(model="echo", messages=HELLO, **kwargs)
        assert "does not match the expected" in failed.value.message
    elif fault == "timeout":
        started = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            create(model="echo", messages=HELLO, timeout=0.3, **kwargs)
        assert time.perf_counter() - started < 5
    elif fault == "malformed":
        response = create(model="echo", messages=HELLO, **kwargs)
        (tool_call,) = response.choices[0].message.tool_calls or []
        with pytest.raises(json.JSONDecodeError):
            json.loads(tool_call.function.arguments)
    else:
        assert create(model="echo", messages=HELLO, **kwargs).choices == []


FAILURES = [f for f in FAULTS if f not in SHAPES]
"""The faults that fail a request or break its answer (the answer shapes are tested with the LLM layer)."""


@pytest.mark.parametrize("fault", FAILURES)
def test_fault_by_header(server: LoopbackServer, fault: str) -> None:
    assert_fault(client_of(server), fault, extra_headers={"X-Apigen-Fault": fault})


@pytest.mark.parametrize("fault", FAILURES)
def test_fault_by_rate(fault: str) -> None:
    with LoopbackServer(ServerConfig(**{rate_field(fault): 1.0})) as running:
        assert_fault(client_of(running), fault)
        reply = client_of(running).chat.completions.create(
            model="echo", messages=HELLO, extra_headers={"X-Apigen-Fault": "none"}
        )
        assert reply.choices[0].message.content == "hello there"
        assert running.stats()["faults"][fault] == 1


def test_timed_out_request_is_cancelled_on_the_server(server: LoopbackServer) -> None:
    assert_fault(client_of(server), "timeout", extra_headers={"X-Apigen-Fault": "timeout"})
    deadline = time.monotonic() + 3
    while server.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.stats()["in_flight"] == 0


def outcomes(seed: int, count: int = 40) -> list[str]:
    """What ``count`` sequential requests got from a server with mixed fault rates."""
    config = ServerConfig(seed=seed, rate_429=0.25, rate_500=0.25, rate_empty=0.2, rate_malformed=0.1)
    seen = []
    with LoopbackServer(config) as running:
        client = client_of(running)
        for _ in range(count):
            try:
                response = client.chat.completions.create(model="echo", messages=HELLO)
            except openai.APIStatusError as exc:
                seen.append(str(exc.status_code))
                continue
            if not response.choices:
                seen.append("empty")
            else:
                seen.append("malformed" if response.choices[0].message.tool_calls else "ok")
        stats = running.stats()
    assert {f: n for f, n in stats["faults"].items() if n} == {f: seen.count(f) for f in set(seen) - {"ok"}}
    return seen


def test_fault_rates_are_seeded_and_deterministic() -> None:
    first = outcomes(seed=7)
    assert first == outcomes(seed=7)
    assert {"ok", "429", "500", "empty", "malformed"} <= set(first)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="more than 1"):
        ServerConfig(rate_429=0.6, rate_500=0.6)
    with pytest.raises(ValueError):
        ServerConfig(rate_timeout=1.5)
    with pytest.raises(ValueError, match="unknown model"):
        ServerConfig(models=["gpt-4"])
    with pytest.raises(SystemExit):
        main(["--rate-429", "2"])


def test_only_loopback_unless_allowed() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        check_host(host)
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(ValueError, match="loopback"):
            LoopbackServer(host=host)
    check_host("0.0.0.0", allow_remote=True)


# --- latency and concurrency ------------------------------------------------------------------------


def test_latency_is_honoured() -> None:
    with LoopbackServer(ServerConfig(latency=0.2)) as running:
        client = client_of(running)
        started = time.perf_counter()
        client.chat.completions.create(model="echo", messages=HELLO)
        assert time.perf_counter() - started >= 0.2
        started = time.perf_counter()
        client.chat.completions.create(model="echo", messages=HELLO, extra_headers={"X-Apigen-Latency": "0"})
        assert time.perf_counter() - started < 0.2
        started = time.perf_counter()
        with pytest.raises(openai.RateLimitError):  # a 429 comes at once
            client.chat.completions.create(
                model="echo", messages=HELLO, extra_headers={"X-Apigen-Fault": "429"}
            )
        assert time.perf_counter() - started < 0.2


def test_100_concurrent_requests_overlap() -> None:
    """100 requests at 0.5 s each pay the latency about once, not 100 times (50 s if serial).

    The same burst against a server without latency, in the same run, measures what the client
    itself costs, so a loaded machine slows both bursts alike and the difference is the latency paid.
    """

    async def burst(base_url: str) -> float:
        async with openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
            started = time.perf_counter()
            replies = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="echo",
                        messages=[{"role": "user", "content": str(i)}],
                    )
                    for i in range(100)
                )
            )
            elapsed = time.perf_counter() - started
        assert [r.choices[0].message.content for r in replies] == [str(i) for i in range(100)]
        return elapsed

    with LoopbackServer(ServerConfig()) as running:
        without_latency = asyncio.run(burst(running.base_url))
    with LoopbackServer(ServerConfig(latency=0.5)) as running:
        with_latency = asyncio.run(burst(running.base_url))
        stats = running.stats()
    assert with_latency >= 0.5
    assert with_latency - without_latency < 1.5, (with_latency, without_latency)
    assert stats["completed"] == 100 and stats["max_in_flight"] > 50


# --- scripted models --------------------------------------------------------------------------------


def test_oracle_solves_tau_bench_dev_tasks(anchors: Path) -> None:
    data_dir = anchors / "retail"
    with LoopbackServer(ServerConfig(oracle_data_dir=data_dir)) as running:
        env = ApigenEnv("retail", data_dir=data_dir, split="dev")
        client = client_of(running)
        for task_id in ("0", "1", "2", "5"):
            reward, termination = run_episode(env, client, "oracle", task_id)
            assert reward == 1.0, (task_id, env.reward_info)
            assert termination in ("user_stop", "agent_stop", "transfer")
        assert running.stats()["models"]["oracle"] > 8


def test_oracle_with_domain_suffix_and_ambiguous_openings(server: LoopbackServer) -> None:
    """Shipped data: a test and a train task open alike; the dialogue tells them apart."""
    env = ApigenEnv("retail", split="train")
    assert run_episode(env, client_of(server), "oracle:retail", "retail-train-294") == (1.0, "user_stop")


@pytest.mark.parametrize("task_id", ["travel-test-104", "travel-test-116"])
def test_oracle_tells_apart_tasks_that_open_alike(server: LoopbackServer, task_id: str) -> None:
    """travel-test-116 is travel-test-104's first request alone: same opening, same first answer."""
    env = ApigenEnv("travel", split="test")
    openings = {t.id: t.effective_goal().requests[0].text for t in env.tasks}
    assert openings["travel-test-104"] == openings["travel-test-116"]
    assert run_episode(env, client_of(server), "oracle:travel", task_id) == (1.0, "user_stop")


def test_oracle_by_task_header_and_unknown_conversation(server: LoopbackServer) -> None:
    client = client_of(server)
    env = ApigenEnv("retail", split="test")
    env.reset(options={"task_id": "retail-test-005"})
    messages = [*env.messages[:1], {"role": "user", "content": "Hi, something unrelated."}]
    with pytest.raises(openai.BadRequestError, match="no task"):
        client.chat.completions.create(model="oracle", messages=messages)
    headers = {"X-Apigen-Task": "test:retail-test-005"}
    reply = client.chat.completions.create(model="oracle", messages=messages, extra_headers=headers)
    assert "identify you" in (reply.choices[0].message.content or "")
    finished = [*messages, *([{"role": "assistant", "content": "..."}] * 40)]
    last = client.chat.completions.create(model="oracle", messages=finished, extra_headers=headers)
    assert last.choices[0].message.content == GOODBYE
    with pytest.raises(openai.NotFoundError, match="unknown domain"):
        client.chat.completions.create(model="oracle:atlantis", messages=messages)


def test_chatty_fails_a_write_task_and_passes_an_empty_one(server: LoopbackServer) -> None:
    env = ApigenEnv("retail", split="test")
    client = client_of(server)
    assert run_episode(env, client, "chatty", "retail-test-001") == (0.0, "agent_stop")
    tool_messages = [m for m in env.messages if m["role"] == "tool" or m.get("tool_calls")]
    assert not tool_messages
    assert [m["content"] for m in env.messages if m["role"] == "assistant"][:-1] == list(CHATTY_QUESTIONS)
    assert run_episode(env, client, "chatty", "retail-test-005") == (1.0, "agent_stop")  # no write, no output


def test_scripted_user_plays_the_customer(server: LoopbackServer) -> None:
    task = ApigenEnv("retail", split="test").tasks[1]
    expected = ScriptedUser()
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": f"You are a customer. Your situation:\n\n{task.instruction}\n\nBe nice.",
        },
        {"role": "user", "content": "Hi! How can I help you today?"},
    ]
    client = client_of(server)
    agent_turns = [
        "Could you tell me your first name, last name and zip code?",
        "I am about to update the address. Do you confirm (yes/no)?",
        "Done. Is there anything else I can help you with?",
    ]
    said = [expected.start(task)] + [expected.respond(turn) for turn in agent_turns]
    for index, wanted in enumerate(said):
        reply = client.chat.completions.create(model="scripted-user", messages=messages)
        content = reply.choices[0].message.content
        assert content == wanted
        messages.append({"role": "assistant", "content": content})
        if index < len(agent_turns):
            messages.append({"role": "user", "content": agent_turns[index]})
    assert said[1].startswith("I'm ") and said[2] == "Yes, please go ahead." and STOP in said[3]


def test_critic_scores(server: LoopbackServer) -> None:
    client = client_of(server)

    def score(messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        content = client.chat.completions.create(model="critic", messages=messages, **kwargs)
        result: dict[str, Any] = json.loads(content.choices[0].message.content or "")
        return result

    assert score(HELLO)["score"] == 10 and score(HELLO)["reason"]
    assert score([{"role": "user", "content": "candidate: fine APIGEN_SCORE=3"}])["score"] == 3
    assert score(HELLO, extra_headers={"X-Apigen-Score": "6"})["score"] == 6


def test_stats_count_requests_faults_and_errors() -> None:
    with LoopbackServer() as running:
        client = client_of(running)
        for _ in range(3):
            client.chat.completions.create(model="echo", messages=HELLO)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="echo", messages=HELLO, extra_headers={"X-Apigen-Fault": "500"}
            )
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=HELLO)
        stats = get_json(f"{running.url}/stats")
        assert stats == {**running.stats(), "uptime": stats["uptime"]}
    assert stats["requests"] == 5 and stats["completed"] == 3 and stats["in_flight"] == 0
    assert stats["faults"]["500"] == 1 and stats["errors"] == {"500": 1, "404": 1}
    assert stats["models"] == {"echo": 4}


# --- as a process -----------------------------------------------------------------------------------


def test_server_process_serves_and_dies_on_sigkill() -> None:
    process, base_url = start_server_process(["--latency", "0.05", "--models", "echo,critic"])
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
        assert client.chat.completions.create(model="echo", messages=HELLO).choices[0].message.content
        with pytest.raises(openai.NotFoundError):  # not enabled
            client.chat.completions.create(model="oracle", messages=HELLO)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=5)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="echo", messages=HELLO, timeout=2)
    finally:
        process.kill()
        process.wait()
