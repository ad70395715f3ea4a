"""The LLM layer (:mod:`apigen_gym.llm`) against the loopback server, through both transports.

Every test runs twice: with the default ``aiohttp`` transport (the ``openai`` client's request on a
pooled session) and with ``openai`` (the client's own stack); both must behave alike, down to the
exception classes. Faults are injected by rate with a fixed ``seed``: :func:`seed_for` finds a seed
whose draws give the wanted sequence of faulty and clean requests, and the server's ``/stats`` fault
counts confirm it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar, get_args

import openai
import pytest
from llm_calls import complete_once

from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.tools import ERROR_PREFIX
from apigen_gym.llm import client as llm_module
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import DEFAULT_PRICES, LLMSettings, Price, Transport
from apigen_gym.llm.types import Completion, LLMError, Usage
from apigen_gym.loopback.models import MODEL_NAMES
from apigen_gym.loopback.server import LoopbackServer, ServerConfig
from apigen_gym.util import jsonio
from apigen_gym.util.aio import run_sync

T = TypeVar("T")
HELLO = [{"role": "user", "content": "hello there"}]
TRANSPORTS: tuple[Transport, ...] = get_args(Transport)
_current: dict[str, Transport] = {"transport": "aiohttp"}


@pytest.fixture(autouse=True, params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """The transport :func:`settings` gives this run of the test."""
    _current["transport"] = request.param
    yield request.param
    _current["transport"] = "aiohttp"


def seed_for(pattern: list[bool], rate: float) -> int:
    """A server seed whose first requests are faulty exactly where ``pattern`` is True (one fault kind)."""
    for seed in range(10_000):
        rng = random.Random(seed)
        if all((rng.random() < rate) == faulty for faulty in pattern):
            return seed
    raise AssertionError("no seed found")  # pragma: no cover


def settings(server: LoopbackServer | str, model: str = "echo", **kwargs: Any) -> LLMSettings:
    base_url = server if isinstance(server, str) else server.base_url
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("transport", _current["transport"])
    return LLMSettings(model=model, base_url=base_url, **kwargs)


def call(client: LLMClient, messages: Any = HELLO, **kwargs: Any) -> Completion:
    """One ``complete`` on a fresh event loop, closing the client's HTTP pool afterwards."""
    return complete_once(client, messages, **kwargs)


def failure(client: LLMClient, messages: Any = HELLO, **kwargs: Any) -> LLMError:
    with pytest.raises(LLMError) as raised:
        call(client, messages, **kwargs)
    return raised.value


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    """No latency, no random faults."""
    with LoopbackServer(ServerConfig()) as running:
        yield running


# --- a completion: message, usage, cost --------------------------------------------------------------


def test_completion_returns_message_usage_and_cost(server: LoopbackServer) -> None:
    prices = {"echo": Price(prompt=1.0, completion=2.0)}
    client = LLMClient(settings(server, prices=prices))
    before = server.stats()["completed"]
    completion = call(client)
    assert completion.message == {"role": "assistant", "content": "hello there"}
    assert completion.content == "hello there"
    assert completion.attempts == 1 and completion.cached is False
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens == len("hello there") // 4 + 1
    expected = (completion.usage.prompt_tokens * 1.0 + completion.usage.completion_tokens * 2.0) / 1e6
    assert completion.cost == pytest.approx(expected)
    assert client.usage == completion.usage and client.cost == pytest.approx(expected) and client.calls == 1
    second = call(client)
    assert client.calls == 2 and client.usage == completion.usage + second.usage
    assert client.usage.total_tokens == 2 * completion.usage.total_tokens
    assert server.stats()["completed"] == before + 2


def test_unknown_model_costs_nothing_and_price_lookup(server: LoopbackServer) -> None:
    completion = call(LLMClient(settings(server)))  # "echo" is in no price table
    assert completion.cost == 0.0 and completion.usage.total_tokens > 0
    assert LLMSettings(model="gpt-4o").price() == DEFAULT_PRICES["gpt-4o"]
    # a dated snapshot takes the longest prefix: gpt-4o-mini, not gpt-4o
    assert LLMSettings(model="gpt-4o-mini-2024-07-18").price() == DEFAULT_PRICES["gpt-4o-mini"]
    assert LLMSettings(model="llama-3-70b").price() is None
    custom = LLMSettings(model="mine-v2", prices={"mine": Price(prompt=3, completion=4)})
    assert custom.price() == Price(prompt=3, completion=4)


def test_request_body_carries_settings_and_params() -> None:
    client = LLMClient(LLMSettings(model="m", temperature=0.3, seed=7, max_tokens=50))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    body = client.request_body(HELLO, tools, temperature=0.0, top_p=0.5)
    assert body == {
        "model": "m",
        "messages": HELLO,
        "tools": tools,
        "temperature": 0.0,
        "seed": 7,
        "max_tokens": 50,
        "top_p": 0.5,
    }
    assert client.request_body(HELLO, None, seed=3)["seed"] == 3
    assert "tools" not in LLMClient(LLMSettings(model="m")).request_body(HELLO, [])


def test_a_none_param_keeps_the_configured_seed() -> None:
    client = LLMClient(LLMSettings(model="m", seed=7))
    assert client.request_body(HELLO, None, seed=None)["seed"] == 7


def test_tool_call_message_is_cleaned(server: LoopbackServer) -> None:
    env = ApigenEnv("retail", split="test")
    env.reset(options={"task_id": "retail-test-000"})
    client = LLMClient(settings(server, "oracle"))

    async def two_turns() -> Completion:
        try:
            first = await client.complete(env.messages, tools=env.tools)
            env.messages.append(first.message)
            env.messages.append({"role": "user", "content": "My email is lucia.hoffman8162@example.com."})
            return await client.complete(env.messages, tools=env.tools)
        finally:
            await client.aclose()

    second = run(two_turns())
    assert set(second.message) == {"role", "content", "tool_calls"}
    (tool_call,) = second.message["tool_calls"]
    assert set(tool_call) == {"id", "type", "function"} and tool_call["type"] == "function"
    assert tool_call["function"]["name"] == "find_user_id_by_email"
    assert json.loads(tool_call["function"]["arguments"]) == {"email": "lucia.hoffman8162@example.com"}


def test_one_client_serves_several_event_loops_and_sync_code(server: LoopbackServer) -> None:
    client = LLMClient(settings(server))
    assert call(client).content == "hello there"
    assert call(client, [{"role": "user", "content": "again"}]).content == "again"
    assert run_sync(client.complete([{"role": "user", "content": "sync"}])).content == "sync"
    assert client.calls == 3


# --- retries ------------------------------------------------------------------------------------------


def test_retry_recovers_from_a_429() -> None:
    config = ServerConfig(rate_429=0.5, seed=seed_for([True, False], 0.5), retry_after_ms=30)
    with LoopbackServer(config) as running:
        client = LLMClient(settings(running))
        started = time.perf_counter()
        completion = call(client)
        elapsed = time.perf_counter() - started
        stats = running.stats()
    assert completion.content == "hello there" and completion.attempts == 2
    assert stats["faults"]["429"] == 1 and stats["requests"] == 2 and stats["completed"] == 1
    assert elapsed >= 0.03  # the server's retry-after-ms was honoured (backoff alone is ≤ 1 ms)
    assert client.calls == 1  # failed attempts are not answers


def test_retry_recovers_from_500s() -> None:
    config = ServerConfig(rate_500=0.5, seed=seed_for([True, True, False], 0.5))
    with LoopbackServer(config) as running:
        completion = call(LLMClient(settings(running)))
        stats = running.stats()
    assert completion.content == "hello there" and completion.attempts == 3
    assert stats["faults"]["500"] == 2 and stats["errors"] == {"500": 2} and stats["completed"] == 1


def test_retry_recovers_from_empty_choices() -> None:
    config = ServerConfig(rate_empty=0.5, seed=seed_for([True, False], 0.5))
    with LoopbackServer(config) as running:
        completion = call(LLMClient(settings(running)))
        stats = running.stats()
    assert completion.content == "hello there" and completion.attempts == 2
    assert stats["faults"]["empty"] == 1 and stats["requests"] == 2


def test_always_empty_is_a_labelled_infrastructure_error() -> None:
    with LoopbackServer(ServerConfig(rate_empty=1.0)) as running:
        error = failure(LLMClient(settings(running, max_retries=2)))
        assert running.stats()["faults"]["empty"] == 3
    assert error.kind == "infrastructure" and error.attempts == 3
    assert "EmptyAnswer" in error.cause and error.label.endswith("after 3 attempts")


def test_an_answer_without_text_is_retried_when_text_is_required() -> None:
    """A simulated user must say something: a malformed answer (a tool call, no text) is a bad answer."""
    config = ServerConfig(rate_malformed=0.5, seed=seed_for([True, False], 0.5))
    with LoopbackServer(config) as running:
        completion = call(LLMClient(settings(running)), text_required=True)
        assert running.stats()["faults"]["malformed"] == 1
    assert completion.content == "hello there" and completion.attempts == 2
    with LoopbackServer(ServerConfig(rate_malformed=1.0)) as running:
        error = failure(LLMClient(settings(running, max_retries=2)), text_required=True)
        assert call(LLMClient(settings(running))).message["tool_calls"]  # an agent takes it as it is
    assert error.label == "infrastructure: EmptyAnswer (no text in the answer) after 3 attempts"


def test_timeout_is_retried_then_succeeds() -> None:
    config = ServerConfig(rate_timeout=0.5, timeout_sleep=5.0, seed=seed_for([True, False], 0.5))
    with LoopbackServer(config) as running:
        started = time.perf_counter()
        completion = call(LLMClient(settings(running, timeout=0.3)))
        elapsed = time.perf_counter() - started
        stats = running.stats()
    assert completion.content == "hello there" and completion.attempts == 2
    assert completion.notes == ["timeout"]  # the episode learns that a try timed out
    assert stats["faults"]["timeout"] == 1
    assert 0.3 <= elapsed < 3.0


def test_timeout_after_the_last_retry_is_labelled() -> None:
    with LoopbackServer(ServerConfig(rate_timeout=1.0, timeout_sleep=5.0)) as running:
        started = time.perf_counter()
        error = failure(LLMClient(settings(running, timeout=0.2, max_retries=1)))
        elapsed = time.perf_counter() - started
        assert running.stats()["faults"]["timeout"] == 2
    assert error.kind == "infrastructure" and error.attempts == 2
    # the retry waited twice as long, and the label says how long the last try waited
    assert error.label == "infrastructure: APITimeoutError (no answer within 0.4 s) after 2 attempts"
    assert isinstance(error.__cause__, openai.APITimeoutError)
    assert 0.6 <= elapsed < 3.0


@pytest.mark.parametrize(
    ("fault", "cause", "error_type"),
    [
        ("500", "InternalServerError (500)", openai.InternalServerError),
        ("429", "RateLimitError (429)", openai.RateLimitError),
    ],
)
def test_always_failing_server_gives_infrastructure_error(
    fault: str, cause: str, error_type: type[Exception]
) -> None:
    with LoopbackServer(ServerConfig(**{f"rate_{fault}": 1.0}, retry_after_ms=1)) as running:
        error = failure(LLMClient(settings(running, max_retries=3)))
        stats = running.stats()
    assert error.kind == "infrastructure" and error.cause == cause and error.attempts == 4
    assert error.label == f"infrastructure: {cause} after 4 attempts"
    assert str(error) == error.label
    assert isinstance(error.__cause__, error_type)
    assert stats["faults"][fault] == 4 and stats["requests"] == 4 and stats["completed"] == 0


def test_no_retries_means_one_attempt() -> None:
    with LoopbackServer(ServerConfig(rate_500=1.0)) as running:
        error = failure(LLMClient(settings(running, max_retries=0)))
        assert running.stats()["requests"] == 1
    assert error.label == "infrastructure: InternalServerError (500) after 1 attempt"


def test_server_down_is_an_infrastructure_error(refused_url: str) -> None:
    started = time.perf_counter()
    error = failure(LLMClient(settings(refused_url, max_retries=2)))
    assert error.kind == "infrastructure" and error.attempts == 3
    assert error.label.startswith("infrastructure: ") and error.label.endswith("after 3 attempts")
    assert isinstance(error.__cause__, openai.APIConnectionError)  # APITimeoutError is a subclass
    assert time.perf_counter() - started < 5


def test_server_down_is_labelled_as_a_connection_error(refused_url: str) -> None:
    error = failure(LLMClient(settings(refused_url, max_retries=0)))
    assert error.label == "infrastructure: APIConnectionError (connection refused) after 1 attempt"


def test_unknown_model_is_a_request_error_not_retried(server: LoopbackServer) -> None:
    before = server.stats()
    error = failure(LLMClient(settings(server, "gpt-9", max_retries=5)))
    after = server.stats()
    assert error.kind == "request" and error.attempts == 1
    assert error.label == (
        "request: NotFoundError (404: The model 'gpt-9' does not exist "
        f"(served: {', '.join(MODEL_NAMES)})) after 1 attempt"
    )  # the server's reason is kept
    assert isinstance(error.__cause__, openai.NotFoundError)
    assert after["requests"] == before["requests"] + 1
    assert after["errors"].get("404", 0) == before["errors"].get("404", 0) + 1


def test_bad_request_is_a_request_error_not_retried(server: LoopbackServer) -> None:
    before = server.stats()["requests"]
    error = failure(LLMClient(settings(server, max_retries=5)), [*HELLO, "not a message"])
    assert error.kind == "request" and error.label.startswith("request: BadRequestError (400: messages")
    assert error.label.endswith(") after 1 attempt") and "\n" not in error.label  # the server's reason kept
    assert server.stats()["requests"] == before + 1


def test_malformed_tool_call_json_comes_back_as_is() -> None:
    env = ApigenEnv("retail", split="test")
    env.reset(options={"task_id": "retail-test-000"})
    with LoopbackServer(ServerConfig(rate_malformed=1.0)) as running:
        completion = call(LLMClient(settings(running, "oracle")), env.messages, tools=env.tools)
        assert running.stats()["faults"]["malformed"] == 1
    assert completion.attempts == 1  # not a transport fault: the answer is the model's
    (tool_call,) = completion.message["tool_calls"]
    arguments = tool_call["function"]["arguments"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments)
    observation, reward, terminated, truncated, _ = env.step(completion.message)
    assert observation.startswith(ERROR_PREFIX) and "not valid JSON" in observation
    assert not terminated and not truncated and reward == 0.0
    assert env.messages[-1]["role"] == "tool" and env.messages[-1]["tool_call_id"] == tool_call["id"]


# --- backoff and jitter -------------------------------------------------------------------------------


class RecordingRandom(random.Random):
    def __init__(self, seed: int):
        super().__init__(seed)
        self.draws: list[tuple[float, float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        value = super().uniform(a, b)
        self.draws.append((a, b, value))
        return value


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every backoff sleep of :mod:`apigen_gym.llm`, recorded (and not slept)."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        recorded.append(delay)
        await real_sleep(0)

    fake = SimpleNamespace(sleep=fake_sleep, get_running_loop=asyncio.get_running_loop)
    monkeypatch.setattr(llm_module, "asyncio", fake)
    return recorded


def test_backoff_is_exponential_with_full_jitter_and_capped(sleeps: list[float]) -> None:
    rng = RecordingRandom(1234)
    with LoopbackServer(ServerConfig(rate_500=1.0)) as running:
        client = LLMClient(settings(running, max_retries=5, backoff_base=0.01, backoff_max=0.05), rng=rng)
        error = failure(client)
    assert error.attempts == 6
    bounds = [b for _, b, _ in rng.draws]
    assert bounds == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])  # base·2^n, capped at backoff_max
    assert all(a == 0 and 0 <= value <= b for a, b, value in rng.draws)  # full jitter: [0, bound]
    assert sleeps == [value for _, _, value in rng.draws]  # a 500 carries no retry-after
    reference = random.Random(1234)
    assert sleeps == [reference.uniform(0, b) for b in bounds]  # seeded: repeatable


def test_backoff_honours_retry_after_as_a_floor(sleeps: list[float]) -> None:
    rng = RecordingRandom(5)
    with LoopbackServer(ServerConfig(rate_429=1.0, retry_after_ms=40)) as running:
        failure(LLMClient(settings(running, max_retries=3, backoff_base=0.001), rng=rng))
    assert len(sleeps) == 3
    assert sleeps == [max(0.04, value) for _, _, value in rng.draws] == pytest.approx([0.04] * 3)


def test_jitter_spreads_the_waits(sleeps: list[float]) -> None:
    with LoopbackServer(ServerConfig(rate_500=1.0)) as running:
        for seed in range(8):
            client = LLMClient(settings(running, max_retries=1, backoff_base=0.02), rng=random.Random(seed))
            failure(client)
    assert len(sleeps) == 8 and all(0 <= s <= 0.02 for s in sleeps)
    assert len(set(sleeps)) == 8


# --- settings from the environment --------------------------------------------------------------------


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_from_env_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_MODEL", "gpt-4o-mini")
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    clean_env.setenv("OPENAI_API_KEY", "sk-secret-from-env")
    found = LLMSettings.from_env()
    assert found.model == "gpt-4o-mini"
    assert found.base_url == "http://127.0.0.1:9/v1"
    assert found.api_key == "sk-secret-from-env"
    assert "sk-secret-from-env" not in repr(found)
    assert found.timeout == 120.0 and found.max_retries == 5  # defaults kept


def test_settings_arguments_win_and_none_overrides_are_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_MODEL", "gpt-4o-mini")
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    clean_env.setenv("OPENAI_API_KEY", "from-env")
    chosen = LLMSettings.from_env(
        model="oracle",
        base_url="http://127.0.0.1:10/v1",
        api_key="from-arg",
        timeout=3.0,
        max_retries=None,
        temperature=None,
    )
    assert (chosen.model, chosen.base_url, chosen.api_key) == ("oracle", "http://127.0.0.1:10/v1", "from-arg")
    assert chosen.timeout == 3.0 and chosen.max_retries == 5 and chosen.temperature is None


def test_settings_without_a_model_fail_clearly(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="no model.*OPENAI_MODEL"):
        LLMSettings.from_env()
    with pytest.raises(ValueError, match="no model"):
        LLMSettings.from_env(model="")
    no_env = LLMSettings.from_env(model="echo")
    assert no_env.base_url == "http://127.0.0.1:9/v1" and no_env.api_key is None


def test_settings_from_env_reach_the_server(clean_env: pytest.MonkeyPatch, server: LoopbackServer) -> None:
    clean_env.setenv("OPENAI_MODEL", "echo")
    clean_env.setenv("OPENAI_BASE_URL", server.base_url)
    assert call(LLMClient(LLMSettings.from_env())).content == "hello there"


# --- the cache ----------------------------------------------------------------------------------------


def cache_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.json") if p.is_file())


def test_cache_records_then_replays_with_the_server_stopped(tmp_path: Path) -> None:
    prices = {"echo": Price(prompt=1.0, completion=1.0)}
    with LoopbackServer() as running:
        recorder = LLMClient(settings(running, cache_dir=tmp_path, prices=prices))
        recorded = call(recorder)
        assert recorded.cached is False
        again = call(recorder)
        assert again.cached is True and again.message == recorded.message
        assert running.stats()["requests"] == 1  # the second call was a hit
        base_url = running.base_url
    (entry,) = cache_files(tmp_path)
    key = jsonio.digest(recorder.request_body(HELLO, None))
    assert entry == tmp_path / key[:2] / f"{key}.json"
    replayer = LLMClient(
        settings(base_url, cache_dir=tmp_path, cache_mode="replay", max_retries=0, prices=prices)
    )
    replayed = call(replayer)
    assert replayed.cached is True
    assert replayed.message == recorded.message
    assert replayed.usage == recorded.usage and replayed.cost == recorded.cost
    # read-write mode with the server gone: still answered from the cache
    offline = LLMClient(settings(base_url, cache_dir=tmp_path, max_retries=0))
    assert call(offline).message == recorded.message


def test_replay_miss_is_a_labelled_error(tmp_path: Path) -> None:
    with LoopbackServer() as running:
        call(LLMClient(settings(running, cache_dir=tmp_path)))
        replayer = LLMClient(settings(running, cache_dir=tmp_path, cache_mode="replay"))
        error = failure(replayer, [{"role": "user", "content": "never recorded"}])
        assert running.stats()["requests"] == 1  # replay never calls the server
        # anything in the body is part of the key: a different temperature misses too
        assert failure(replayer, HELLO, temperature=0.5).kind == "infrastructure"
    assert error.kind == "infrastructure" and "cache miss" in error.label and "replay" in error.label


@pytest.mark.parametrize("damage", ["{not json", "", '{"message": "not a dict"}', "\udcff"])
def test_damaged_cache_entry_is_a_miss(tmp_path: Path, damage: str) -> None:
    with LoopbackServer() as running:
        call(LLMClient(settings(running, cache_dir=tmp_path)))
        (entry,) = cache_files(tmp_path)
        entry.write_bytes(damage.encode("utf-8", "surrogateescape"))
        with pytest.raises(LLMError, match="cache miss"):
            call(LLMClient(settings(running, cache_dir=tmp_path, cache_mode="replay")))
        repaired = call(LLMClient(settings(running, cache_dir=tmp_path)))  # read-write: asks the server
        assert repaired.cached is False and repaired.content == "hello there"
        assert running.stats()["requests"] == 2
    assert Completion.model_validate_json(entry.read_text()).content == "hello there"  # rewritten


def test_cache_off_neither_reads_nor_writes(tmp_path: Path) -> None:
    with LoopbackServer() as running:
        client = LLMClient(settings(running, cache_dir=tmp_path, cache_mode="off"))
        assert call(client).cached is False and call(client).cached is False
        assert running.stats()["requests"] == 2
    assert cache_files(tmp_path) == []


def test_failures_are_not_cached(tmp_path: Path) -> None:
    with LoopbackServer(ServerConfig(rate_500=1.0)) as running:
        failure(LLMClient(settings(running, cache_dir=tmp_path, max_retries=0)))
    assert cache_files(tmp_path) == []


def test_usage_addition() -> None:
    total = Usage(prompt_tokens=3, completion_tokens=4) + Usage(prompt_tokens=10, completion_tokens=1)
    assert total == Usage(prompt_tokens=13, completion_tokens=5) and total.total_tokens == 18
    assert Completion(message={"role": "assistant", "content": None}).content == ""
