"""Real servers' quirks, on the loopback server: answer shapes, refused structured outputs, one slot.

Each shape a real server sends (``content: ""`` beside tool calls, ids without ``call_``, arguments
as an object or as broken JSON, tool calls written as text, answers cut at ``max_tokens``) is a fault
mode of the loopback server; here each is sent through the LLM layer, the model agents and the eval
runner. ``tests/test_llamacpp.py`` meets the same shapes from llama.cpp's own server.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
from llm_calls import complete_once

from apigen_gym.core.env import ApigenEnv
from apigen_gym.evaluation.runner import evaluate
from apigen_gym.generation.blueprint import ProposalError
from apigen_gym.generation.context import ContextSampler
from apigen_gym.generation.proposers import LLMProposer
from apigen_gym.generation.recombine import Recombiner
from apigen_gym.generation.validators import Committee, JudgeAnswer
from apigen_gym.llm.client import LLMClient, refuses_response_format
from apigen_gym.llm.settings import RESAMPLES, LLMSettings
from apigen_gym.llm.shapes import calls_in_text, normalize_message
from apigen_gym.llm.structured import json_object
from apigen_gym.llm.types import Completion, LLMError
from apigen_gym.loopback.config import rate_field
from apigen_gym.loopback.server import LoopbackServer, ServerConfig
from apigen_gym.players.llm_users import BestOfNUser, CriticAnswer, LLMUser
from apigen_gym.players.model_agents import ReActAgent, ToolCallingAgent

TASKS = ["retail-test-000", "retail-test-001", "retail-test-002"]
TOOL_NAMES = ["find_user_id_by_email", "get_order_details"]


def settings(server: LoopbackServer, model: str, **kwargs: Any) -> LLMSettings:
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("timeout", 10.0)
    return LLMSettings(model=model, base_url=server.base_url, **kwargs)


def ask(client: LLMClient, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    return complete_once(client, messages, **kwargs)


# --- shapes, through the LLM layer ------------------------------------------------------------------


def run_eval(
    server: LoopbackServer, tmp_path: Path, agent: str = "tool-calling", **agent_kwargs: Any
) -> list[Any]:
    client = LLMClient(settings(server, "oracle"))
    agent_class = ReActAgent if agent == "react" else ToolCallingAgent
    return evaluate(
        lambda: ApigenEnv("retail"),
        lambda: agent_class(client, **agent_kwargs),
        tmp_path,
        TASKS,
        concurrency=3,
        clients=[client],
    )


@pytest.mark.parametrize("shape", ["blank-content", "bare-ids", "args-object", "text-calls", "json-calls"])
def test_the_oracle_still_solves_its_tasks_whatever_the_shape(shape: str, tmp_path: Path) -> None:
    with LoopbackServer(ServerConfig(**{rate_field(shape): 1.0})) as server:
        results = run_eval(server, tmp_path)
        faults = server.stats()["faults"][shape]
    assert faults > 0
    assert [r.reward for r in results] == [1.0] * len(TASKS)
    calls = [c for r in results for m in r.messages for c in m.get("tool_calls") or []]
    assert calls, "the tasks are solved through tool calls"
    for result in results:
        for message in result.messages:
            if message.get("tool_calls"):
                assert message["content"] is None or message["content"].strip()  # "" comes back as None
    recovered = sum(r.meta.get("llm_notes", {}).get("text-tool-calls", 0) for r in results)
    if shape in ("text-calls", "json-calls"):  # recovered from text, and counted as such
        assert recovered == len(calls)
    else:
        assert recovered == 0
    if shape == "bare-ids":  # the server's ids are kept, and the tool results answer them
        assert not any(c["id"].startswith("call_") for c in calls)
        answered = {m["tool_call_id"] for r in results for m in r.messages if m["role"] == "tool"}
        assert answered == {c["id"] for c in calls}


def test_cut_answers_are_labelled_not_parsed(tmp_path: Path) -> None:
    with LoopbackServer(ServerConfig(rate_cut=1.0)) as server:
        results = run_eval(server, tmp_path, max_tokens=64)
    for result in results:
        assert result.error is None and result.termination  # an ending, not a crash
        cut = result.meta["llm_notes"]["cut"]
        assert cut == sum(1 for m in result.messages if m["role"] == "assistant")
        assert not any(m.get("tool_calls") for m in result.messages)  # a cut <tool_call> is not a call
        assert result.meta["max_tokens"] == {"agent": 64}


def test_malformed_arguments_become_an_error_observation(tmp_path: Path) -> None:
    with LoopbackServer(ServerConfig(rate_malformed=1.0)) as server:
        results = run_eval(server, tmp_path)
    errors = [m["content"] for r in results for m in r.messages if m["role"] == "tool"]
    assert errors and all("not valid JSON" in e for e in errors)


@pytest.mark.parametrize(
    ("text", "names", "rest"),
    [
        ('<tool_call>\n{"name": "get_order_details", "arguments": {"order_id": "#W1"}}\n</tool_call>', 1, ""),
        ('Let me look.\n<tool_call>{"name": "x", "arguments": {}}</tool_call>', 1, "Let me look."),
        ('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b"}</tool_call>', 2, ""),
        ('{"name": "find_user_id_by_email", "arguments": {"email": "a@b.c"}}', 1, ""),
        ('```json\n{"name": "get_order_details", "parameters": {"order_id": "#W1"}}\n```', 1, ""),
        ('[{"name": "get_order_details", "arguments": {}}, {"name": "find_user_id_by_email"}]', 2, ""),
    ],
)
def test_tool_calls_written_as_text_are_recovered(text: str, names: int, rest: str) -> None:
    calls, left = calls_in_text(text, TOOL_NAMES)
    assert len(calls) == names and left == rest
    message, notes = normalize_message({"role": "assistant", "content": text}, TOOL_NAMES)
    assert len(message["tool_calls"]) == names and notes == ["text-tool-calls"] * names
    for call in message["tool_calls"]:
        assert call["id"].startswith("call_") and isinstance(json.loads(call["function"]["arguments"]), dict)


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "not_a_tool", "arguments": {}}',  # JSON for the user, not a call of a known tool
        '{"order": "#W1", "total": 54.04}',
        "Your order total is 54.04.",
        "<tool_call>not json</tool_call>",
    ],
)
def test_text_that_is_not_a_tool_call_stays_text(text: str) -> None:
    message, notes = normalize_message({"role": "assistant", "content": text}, TOOL_NAMES)
    assert message == {"role": "assistant", "content": text} and notes == []


def test_a_cut_answer_is_not_read_for_tool_calls() -> None:
    text = '<tool_call>\n{"name": "get_order_details", "arguments": {"order_id": "#W1"}}\n</tool_call>'
    message, notes = normalize_message({"role": "assistant", "content": text}, TOOL_NAMES, "length")
    assert "tool_calls" not in message and notes == ["cut"]


def test_missing_and_repeated_ids_are_replaced() -> None:
    calls = [{"function": {"name": "a", "arguments": "{}"}}, {"id": "0", "function": {"name": "b"}}]
    calls.append({"id": "0", "type": "function", "function": {"name": "c", "arguments": {"x": 1}}})
    message, notes = normalize_message({"role": "assistant", "content": "", "tool_calls": calls})
    ids = [c["id"] for c in message["tool_calls"]]
    assert len(set(ids)) == 3 and ids[1] == "0" and message["content"] is None
    assert message["tool_calls"][2]["function"]["arguments"] == '{"x": 1}'
    assert sorted(notes) == ["arguments-object", "missing-id", "missing-id"]


def test_json_object_finds_the_answer_in_fences_and_prose() -> None:
    assert json_object('{"a": 1}') == {"a": 1}
    assert json_object('Sure:\n```json\n{"a": 1}\n```\nBye') == {"a": 1}
    assert json_object('The answer is {"a": {"b": 2}} and {"c": 3}.') == {"a": {"b": 2}}
    assert json_object('Note {not json} then {"a": 1}') == {"a": 1}
    with pytest.raises(ValueError):
        json_object("no json here")


# --- structured outputs -----------------------------------------------------------------------------

CRITIC_MESSAGES = [{"role": "system", "content": 'Answer {"score": 7, "reason": "fine"}'}]


@pytest.mark.parametrize("refuse", [False, True])
def test_structured_output_is_asked_for_and_falls_back_to_the_prompt(refuse: bool) -> None:
    with LoopbackServer(ServerConfig(refuse_response_format=refuse)) as server:
        client = LLMClient(settings(server, "json"))
        first = ask(client, CRITIC_MESSAGES, schema=CriticAnswer)
        second = ask(LLMClient(settings(server, "json")), CRITIC_MESSAGES, schema=CriticAnswer)
        stats = server.stats()
        remembered = refuses_response_format(server.base_url)
    for answer in (first, second):
        assert CriticAnswer.model_validate(json_object(answer.content)) == CriticAnswer(
            score=7, reason="fine"
        )
    if refuse:  # refused once, then remembered for this server: the second call asks prompt-only
        assert remembered and stats["errors"] == {"400": 1} and stats["structured"] == 0
        assert first.notes == ["prompt-only"] and first.attempts == 2 and second.notes == []
        assert "```json" in first.content  # the prompt-only answer, read tolerantly
    else:
        assert not remembered and stats["errors"] == {} and stats["structured"] == 2
        assert first.content.startswith("{")


def test_request_carries_a_json_schema_from_the_pydantic_model() -> None:
    client = LLMClient(LLMSettings(model="m"))
    body = client.request_body([], None, "judge", JudgeAnswer)
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == {"correctness", "completeness", "satisfaction", "creativity"}
    assert body["max_tokens"] == 256  # the judge role's default cap
    assert client.request_body([], None, "judge", max_tokens=9)["max_tokens"] == 9
    capped = LLMClient(LLMSettings(model="m", max_tokens=50))
    assert capped.request_body([], None, "proposer")["max_tokens"] == 50  # the client's own cap wins


@pytest.mark.parametrize("refuse", [False, True])
def test_every_json_role_reads_its_answer_either_way(refuse: bool) -> None:
    """Proposer, judges, critic and recombination against a server with or without structured outputs."""
    from apigen_gym.core.domain import load_domain
    from apigen_gym.generation.proposers import blueprint_of

    domain = load_domain("retail")
    database = domain.database()
    tasks = [t for t in domain.tasks("test") if t.user_id == domain.tasks("test")[0].user_id][:2]
    with LoopbackServer(ServerConfig(refuse_response_format=refuse)) as server:
        client = LLMClient(settings(server, "json"))

        async def go() -> tuple[Any, ...]:
            try:
                context = ContextSampler(domain, database).sample(random.Random(0), tasks[0].user_id or "")
                proposal = await LLMProposer(client).propose(context, [], random.Random(0))
                verdict = await Committee([client, client]).review(
                    domain, blueprint_of(tasks[0]), None, "policy"
                )
                combined, note = await Recombiner(client).blueprint(domain, tasks)
                return proposal, verdict, note
            finally:
                await client.aclose()

        proposal, verdict, note = asyncio.run(go())
    # the proposer's answer is the prompt's example form: read as a draft, rejected only for its content
    assert not isinstance(proposal, ProposalError) or not proposal.reason.startswith("not json")
    assert verdict.details["abstained"] == [] and verdict.passed  # both judges' JSON was read
    assert note is None  # the merged instruction was read


def test_a_cut_judge_answer_is_an_abstention() -> None:
    from apigen_gym.core.domain import load_domain
    from apigen_gym.generation.proposers import blueprint_of

    domain = load_domain("retail")
    with LoopbackServer(ServerConfig(rate_cut=1.0)) as server:
        client = LLMClient(settings(server, "json"))

        async def go() -> Any:
            try:
                return await Committee([client]).review(
                    domain, blueprint_of(domain.tasks("test")[0]), None, ""
                )
            finally:
                await client.aclose()

        verdict = asyncio.run(go())
    assert not verdict.passed and verdict.details["votes"][0]["error"].startswith("cut:")


def test_a_cut_critic_answer_scores_zero() -> None:
    task = ApigenEnv("retail").tasks[0]
    with LoopbackServer(ServerConfig(rate_cut=1.0)) as server:
        candidates, critic = LLMClient(settings(server, "echo")), LLMClient(settings(server, "critic"))
        user = BestOfNUser(candidates, critic, n=2)

        async def go() -> str:
            try:
                return await user.start_async(task, seed=1)
            finally:
                await candidates.aclose()
                await critic.aclose()

        asyncio.run(go())
    assert user.last_scores == [0.0, 0.0] and user.notes["cut"] == 4  # two candidates, two reviews


# --- a server with one slot -------------------------------------------------------------------------


async def _burst(server: LoopbackServer, count: int, **kwargs: Any) -> list[Completion]:
    client = LLMClient(settings(server, "echo", **kwargs))
    try:
        return list(
            await asyncio.gather(
                *(client.complete([{"role": "user", "content": f"n{i}"}]) for i in range(count))
            )
        )
    finally:
        await client.aclose()


def test_one_slot_server_queues_and_timeouts_are_retried_longer_and_noted() -> None:
    with LoopbackServer(ServerConfig(slots=1, latency=0.15)) as server:
        answers = asyncio.run(_burst(server, 8, timeout=0.4, max_retries=4))
    assert sorted(a.content for a in answers) == sorted(f"n{i}" for i in range(8))  # nothing lost
    timed_out = [a for a in answers if "timeout" in a.notes]
    assert timed_out, "a queue longer than the timeout times some requests out"
    assert all(a.attempts == a.notes.count("timeout") + 1 for a in answers)


def test_max_in_flight_keeps_the_queue_in_the_client_where_no_timeout_runs() -> None:
    with LoopbackServer(ServerConfig(slots=1, latency=0.15)) as server:
        answers = asyncio.run(_burst(server, 8, timeout=0.4, max_retries=0, max_in_flight=1))
        stats = server.stats()
    assert sorted(a.content for a in answers) == sorted(f"n{i}" for i in range(8))
    assert all(a.notes == [] and a.attempts == 1 for a in answers)
    assert stats["max_in_flight"] == 1


def test_one_slot_eval_with_llm_user_loses_nothing(tmp_path: Path) -> None:
    with LoopbackServer(ServerConfig(slots=1, latency=0.01)) as server:
        agent = LLMClient(settings(server, "oracle", max_in_flight=1))
        user = LLMClient(settings(server, "scripted-user", max_in_flight=1))
        results = evaluate(
            lambda: ApigenEnv("retail", user=LLMUser(user, max_tokens=32)),
            lambda: ToolCallingAgent(agent),
            tmp_path,
            TASKS,
            concurrency=3,
            clients=[agent, user],
        )
        stats = server.stats()
    assert [r.reward for r in results] == [1.0] * len(TASKS)
    assert stats["max_in_flight"] == 1 and stats["errors"] == {}
    assert all(r.meta["max_tokens"] == {"user": 32} for r in results)


# --- answers the server cannot read -----------------------------------------------------------------

HELLO = [{"role": "user", "content": "hello"}]


def recording(client: LLMClient) -> list[dict[str, Any]]:
    """The bodies ``client`` sends, as they go on the wire."""
    sent: list[dict[str, Any]] = []
    post = client._post

    async def record(body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        sent.append(body)
        return await post(body, timeout)

    client._post = record  # type: ignore[method-assign]
    return sent


def fails(client: LLMClient, **kwargs: Any) -> LLMError:
    with pytest.raises(LLMError) as failed:
        ask(client, HELLO, **kwargs)
    return failed.value


def test_an_unreadable_answer_is_asked_again_with_other_seeds_then_labelled_model() -> None:
    with LoopbackServer(ServerConfig(rate_unreadable=1.0)) as server:
        client = LLMClient(settings(server, "echo", seed=7, max_retries=0, backoff_base=10))
        sent = recording(client)
        error = fails(client, role="judge")
        assert error.kind == "model" and error.attempts == 1 + RESAMPLES["judge"]
        assert error.label.startswith(
            "model: InternalServerError (500: The model produced output that does not match the expected"
        )
        seeds = [body["seed"] for body in sent]
        assert seeds[0] == 7 and len(set(seeds)) == len(seeds) == 3  # a fixed seed would fail the same way
        sent.clear()
        assert fails(client, role="agent").attempts == 1 and len(sent) == 1  # the agent's own mistake
        sent.clear()
        assert fails(client, role="user", temperature=0).attempts == 1 and len(sent) == 1  # greedy: futile
        assert server.stats()["faults"]["unreadable"] == 5


def test_a_later_seed_may_be_read_and_the_tries_are_noted() -> None:
    with LoopbackServer(ServerConfig(rate_unreadable=0.5, seed=2)) as server:
        client = LLMClient(settings(server, "echo", max_retries=0))
        outcomes: list[Completion | None] = []
        for _ in range(12):
            try:
                outcomes.append(ask(client, HELLO, role="user"))
            except LLMError as exc:
                assert exc.kind == "model"
                outcomes.append(None)
    answered = [a for a in outcomes if a is not None]
    assert any(a.notes == ["unreadable"] * (a.attempts - 1) and a.attempts > 1 for a in answered)
    assert all(a.content == "hello" for a in answered)


def test_an_agents_unreadable_answer_is_an_error_observation_and_the_episode_goes_on(tmp_path: Path) -> None:
    with LoopbackServer(ServerConfig(rate_unreadable=1.0)) as server:
        client = LLMClient(settings(server, "oracle"))
        results = evaluate(
            lambda: ApigenEnv("retail", max_steps=3),
            lambda: ToolCallingAgent(client),
            tmp_path,
            TASKS[:1],
            clients=[client],
        )
    (result,) = results
    assert result.error is None and result.termination == "max_steps"  # no crash, no infrastructure label
    assert result.meta["llm_notes"] == {"unreadable": 3}
    errors = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert errors == ["Error: malformed tool call: missing tool name"] * 3


def test_json_roles_and_the_llm_user_label_unreadable_answers(tmp_path: Path) -> None:
    from apigen_gym.core.domain import load_domain
    from apigen_gym.generation.phase2 import label_of
    from apigen_gym.generation.proposers import blueprint_of

    domain = load_domain("retail")
    task = domain.tasks("test")[0]
    with LoopbackServer(ServerConfig(rate_unreadable=1.0)) as server:
        client = LLMClient(settings(server, "json"))

        async def go() -> tuple[Any, ...]:
            try:
                context = ContextSampler(domain, domain.database()).sample(
                    random.Random(0), task.user_id or ""
                )
                proposal = await LLMProposer(client).propose(context, [], random.Random(0))
                verdict = await Committee([client]).review(domain, blueprint_of(task), None, "policy")
                return proposal, verdict
            finally:
                await client.aclose()

        proposal, verdict = asyncio.run(go())
        user = LLMClient(settings(server, "scripted-user"))
        (episode,) = evaluate(
            lambda: ApigenEnv("retail", user=LLMUser(user)),
            lambda: ToolCallingAgent(LLMClient(settings(server, "oracle"))),
            tmp_path,
            TASKS[:1],
            clients=[user],
        )
    # a rejection the proposer is told about (not an LLM outage), an abstention, a labelled episode
    assert isinstance(proposal, ProposalError) and proposal.reason.startswith(
        "model: InternalServerError (500"
    )
    assert verdict.details["abstained"] == ["judge1:json"] and not verdict.passed
    assert verdict.details["votes"][0]["error"].startswith("model: ")
    assert (
        episode.error is not None
        and episode.error.startswith("model: ")
        and label_of(episode) == "model_error"
    )
