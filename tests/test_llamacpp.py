"""A real inference server and a real model on the wire: llama.cpp's own server serving SmolLM2-135M.

The server is llama.cpp's (the ``xllamacpp`` wheel, dev extra) with the project's tool-calling chat
template, one thread and one slot; the model is ``../shared/models/SmolLM2-135M-Instruct.Q4_1.gguf``
(these tests skip, saying so, when it is absent). The model is far too small to solve tasks: what is
tested is that every path survives a server and answers nobody here wrote. Answers are capped hard
(``--max-tokens``) and runs are short, so that the module adds a few minutes to the suite.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_calls import complete_once

from apigen_gym.cli import main
from apigen_gym.evaluation.runner import EpisodeResult, read_results
from apigen_gym.generation.budget import DEFAULT_PROMPT_BUDGET, PromptTooLong, messages_tokens
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.phase1 import Phase1Worker
from apigen_gym.generation.phase2 import read_records
from apigen_gym.generation.pipeline import generate
from apigen_gym.generation.proposers import proposer_messages
from apigen_gym.generation.store import RunPaths
from apigen_gym.generation.validators import JudgeAnswer
from apigen_gym.integrations.llamacpp import LlamaCppServer
from apigen_gym.llm.client import LLMClient, refuses_response_format
from apigen_gym.llm.settings import LLMSettings, MaxTokens
from apigen_gym.llm.types import Completion
from apigen_gym.players.llm_users import CriticAnswer

MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "smollm2"
CAPS = "agent=40,user=24,critic=24,judge=256,proposer=400,recombine=48"
BUDGET = 3000
"""The generation prompts' budget here: less detail than the default, so that the model reads less."""


@pytest.fixture(scope="module")
def server() -> Iterator[LlamaCppServer]:
    if not MODEL.is_file():
        pytest.skip(f"the SmolLM2 GGUF model is not at ../shared/models (looked for {MODEL})")
    with LlamaCppServer(MODEL, threads=1, slots=1, alias=ALIAS) as running:
        yield running


def counters(server: LlamaCppServer) -> dict[str, float]:
    """llama.cpp's own Prometheus counters."""
    text = urllib.request.urlopen(server.base_url.removesuffix("/v1") + "/metrics", timeout=30).read()
    found = re.findall(r"^llamacpp:(\w+) ([0-9.e+]+)$", text.decode(), flags=re.MULTILINE)
    return {name: float(value) for name, value in found}


def llm_flags(server: LlamaCppServer) -> list[str]:
    return ["--base-url", server.base_url, "--max-tokens", CAPS, "--max-in-flight", "1", "--timeout", "300"]


def run_eval(argv: list[str], out: Path) -> list[EpisodeResult]:
    assert main([*argv, "--out", str(out)]) == 0
    return read_results(out)


def assert_ended(results: list[EpisodeResult], count: int) -> None:
    """Every episode is recorded, with a reward or a labelled failure."""
    assert len(results) == count
    for result in results:
        assert result.termination in ("agent_stop", "user_stop", "transfer", "max_steps", "error")
        assert result.reward in (0.0, 1.0)
        if result.error is not None:
            assert result.error.startswith(("infrastructure:", "request:", "model:"))


def ask(server: LlamaCppServer, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    client = LLMClient(LLMSettings(model=ALIAS, base_url=server.base_url, timeout=300, max_in_flight=1))
    return complete_once(client, messages, **kwargs)


# --- eval -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["retail", "airline", "travel"])
def test_tool_calling_agent_on_each_domain_with_the_servers_usage(
    server: LlamaCppServer, domain: str, tmp_path: Path
) -> None:
    before = counters(server)
    argv = [
        "eval",
        "--env",
        domain,
        "--agent-model",
        ALIAS,
        "--max-steps",
        "2",
        "--tasks",
        f"{domain}-test-001",
    ]
    results = run_eval([*argv, *llm_flags(server)], tmp_path / "run")
    after = counters(server)
    assert_ended(results, 1)
    (result,) = results
    assert result.meta["max_tokens"] == {"agent": 40}
    # usage is the server's own count of what it generated, not an estimate
    generated = after["tokens_predicted_total"] - before["tokens_predicted_total"]
    assert result.usage.completion_tokens == generated > 0
    assert result.usage.prompt_tokens > 1000  # the policy and the tools' schemas reached the model


def test_react_agent_and_llm_users_record_then_replay_with_no_server(
    server: LlamaCppServer, tmp_path: Path, refused_url: str
) -> None:
    common = ["eval", "--env", "retail", "--tasks", "retail-test-001", "--max-steps", "2", "--llm-seed", "3"]
    react = [*common, "--agent", "react", "--agent-model", ALIAS, "--user", "llm", "--user-model", ALIAS]
    best_of = [*common, "--agent-model", ALIAS, "--user", "llm", "--user-model", ALIAS, "--user-best-of", "2"]
    recorded = {}
    for name, argv in (("react", react), ("best-of-2", best_of)):
        cache = ["--cache-dir", str(tmp_path / "cache")]
        results = run_eval([*argv, *llm_flags(server), *cache], tmp_path / name)
        assert_ended(results, 1)
        assert results[0].usage.completion_tokens > 0
        assert results[0].meta["max_tokens"] == {"agent": 40, "user": 24}
        recorded[name] = results[0]
        # the same run from the cache, with nothing listening at the server's address
        offline = [*argv, "--max-tokens", CAPS, "--base-url", refused_url, *cache]
        (replayed,) = run_eval(offline, tmp_path / f"{name}-replay")
        assert replayed.messages == results[0].messages and replayed.reward == results[0].reward
        assert replayed.usage == results[0].usage


# --- the server's own answer shapes -----------------------------------------------------------------

WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def weather_chat() -> list[dict[str, Any]]:
    """A conversation whose earlier turns call the tool, so that the model calls it again (sometimes)."""
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": "You are a weather bot. You answer every question by calling get_weather.",
        }
    ]
    for number, (city, weather) in enumerate((("Rome", "rainy"), ("Oslo", "snow"))):
        call = {"id": f"a{number}", "type": "function"}
        call["function"] = {"name": "get_weather", "arguments": json.dumps({"city": city})}
        messages += [
            {"role": "user", "content": f"Weather in {city}?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"a{number}", "content": weather},
            {"role": "assistant", "content": f"It is {weather} in {city}."},
        ]
    return [*messages, {"role": "user", "content": "Weather in Paris?"}]


def test_the_servers_tool_calls_come_back_in_openai_shape(server: LlamaCppServer) -> None:
    answers = [
        ask(server, weather_chat(), tools=WEATHER, max_tokens=40, seed=s, temperature=0.7) for s in range(3)
    ]
    calls = [a for a in answers if a.message.get("tool_calls")]
    assert calls, "the model called the tool for none of the seeds"
    body = {"model": ALIAS, "messages": weather_chat(), "tools": WEATHER, "max_tokens": 40}
    body |= {"temperature": 0.7, "seed": answers.index(calls[0])}
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    raw = json.loads(urllib.request.urlopen(request, timeout=300).read())["choices"][0]["message"]
    assert raw["content"] == "" and not raw["tool_calls"][0]["id"].startswith("call_")  # llama.cpp's shape
    for answer in calls:
        message = answer.message
        assert message["content"] is None  # "" beside tool calls comes back as OpenAI's None
        (call,) = message["tool_calls"]
        assert not call["id"].startswith("call_")  # the server's id is kept: it matches the tool result
        assert call["function"]["name"] == "get_weather"
        assert isinstance(json.loads(call["function"]["arguments"]), dict)
    for answer in answers:
        assert answer.usage.completion_tokens > 0 and answer.finish_reason in ("stop", "tool_calls", "length")


def test_a_cut_answer_is_marked(server: LlamaCppServer) -> None:
    answer = ask(server, [{"role": "user", "content": "Tell me a long story about a cat."}], max_tokens=4)
    assert answer.cut and answer.notes == ["cut"] and answer.usage.completion_tokens == 4


@pytest.mark.parametrize(("schema", "role"), [(CriticAnswer, "critic"), (JudgeAnswer, "judge")])
def test_structured_outputs_are_enforced_by_the_server(
    server: LlamaCppServer, schema: Any, role: Any
) -> None:
    messages = [
        {"role": "system", "content": "You grade a customer-service task. Answer in JSON."},
        {"role": "user", "content": "The agent refunded the order as the customer asked. Grade it."},
    ]
    # the schema bounds the answer (a reason of at most 300 characters, a token at least each, and a
    # few fields): a cap above that bound cannot cut it, whatever the model samples
    answer = ask(server, messages, role=role, schema=schema, max_tokens=512)
    assert not refuses_response_format(server.base_url) and answer.notes == []
    schema.model_validate_json(answer.content)  # the grammar the server built from the schema held


def test_one_slot_and_many_requests_lose_nothing(server: LlamaCppServer) -> None:
    # no max_in_flight: the six requests queue in the server, and the later ones outlast the timeout
    client = LLMClient(LLMSettings(model=ALIAS, base_url=server.base_url, timeout=0.5, max_retries=6))
    chats = [[{"role": "user", "content": f"Count to {n}."}] for n in range(6)]

    async def go() -> list[Completion | BaseException]:
        try:
            return list(
                await asyncio.gather(
                    *(client.complete(c, max_tokens=24) for c in chats), return_exceptions=True
                )
            )
        finally:
            await client.aclose()

    answers = asyncio.run(go())
    assert len(answers) == len(chats)
    for answer in answers:  # an answer, or a labelled failure: nothing is dropped
        assert isinstance(answer, Completion) or str(answer).startswith("infrastructure: APITimeoutError")
        if isinstance(answer, Completion):  # each try that timed out is noted, the next waited longer
            assert answer.attempts == answer.notes.count("timeout") + 1
    assert any(isinstance(a, Completion) for a in answers)


# --- generation -------------------------------------------------------------------------------------


def test_generation_prompts_fit_the_budget_in_the_servers_own_tokens(
    server: LlamaCppServer, tmp_path: Path
) -> None:
    for domain in ("retail", "airline", "travel"):
        run = Phase1Worker(GenerationConfig(domain=domain, n=1))  # what samples the contexts
        for index in range(8):
            context = run.context(index)
            for budget in (BUDGET, DEFAULT_PROMPT_BUDGET):
                try:
                    messages = proposer_messages(context, [], budget)
                except PromptTooLong:
                    assert budget == BUDGET  # a small budget may not fit every context: said, not sent
                    continue
                real = server.prompt_tokens(messages)
                assert real <= messages_tokens(messages) <= budget  # the estimate errs on the safe side


def test_generate_with_every_model_on_the_server(
    server: LlamaCppServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apigen_gym.generation import phase1

    monkeypatch.setattr(phase1, "MAX_BLUEPRINTS_PER_TASK", 1)  # one blueprint, with its feedback rounds
    run = tmp_path / "gen"
    argv = ["generate", "--domain", "retail", "-n", "1", "--phase", "1", "--rounds", "2", "--recombine", "0"]
    models = ["--model", ALIAS, "--judge-model", ALIAS, "--prompt-budget", str(BUDGET)]
    assert main([*argv, *models, *llm_flags(server), "--out", str(run)]) == 0
    paths = RunPaths(run)
    rows = [json.loads(line) for line in paths.proposals.read_text().splitlines()]
    proposals = [r for r in rows if r.get("kind") == "proposal"]
    assert len(proposals) == 2 and proposals[1]["feedback"]  # the second round got the first's feedback
    for row in proposals:
        assert not (row.get("error") or {}).get("reason", "").startswith("llm error")  # every prompt fit
        assert 0 < row["usage"]["prompt_tokens"] <= BUDGET  # the server's count, within the budget
        if row["outcome"] != "accepted":  # every rejection has its reason, from a known stage
            reasons = [
                (verdict["stage"], reason) for verdict in row["verdicts"] for reason in verdict["reasons"]
            ]
            assert reasons and all(re.match(r"^[\w ]+:", reason) for _, reason in reasons)
            assert {stage for stage, _ in reasons} <= {"format", "execution", "policy", "committee"}
    summary = json.loads(paths.stats.read_text())["phase1_summary"]
    assert summary["proposals"] == 2
    answered = sum(r["usage"]["completion_tokens"] for r in proposals)
    assert summary["usage"]["completion_tokens"] == answered > 0  # the stats count what the server generated
    saved = json.loads(paths.config.read_text())
    assert saved["max_tokens"] == MaxTokens.parse([CAPS]).model_dump() and saved["prompt_budget"] == BUDGET


def test_the_committee_on_the_server_reviews_blueprints_then_phase2_labels_every_episode(
    server: LlamaCppServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apigen_gym.generation import phase1

    monkeypatch.setattr(phase1, "MAX_BLUEPRINTS_PER_TASK", 1)
    model = LLMSettings(model=ALIAS, base_url=server.base_url, timeout=300, max_in_flight=1)
    config = GenerationConfig(
        domain="retail",
        n=1,
        judges=[model],  # the template proposer's blueprint passes the rules and meets the committee
        acceptance_threshold=0.0,  # whatever the scores, the task goes on to Phase 2
        feedback_rounds=1,
        recombine=0,
        user=model,
        agent=model,
        attempts=1,
        max_tokens=MaxTokens.parse([CAPS]),
        prompt_budget=BUDGET,
    )
    stats = generate(config, tmp_path / "run", max_steps=3)
    paths = RunPaths(tmp_path / "run")
    (row,) = [json.loads(line) for line in paths.proposals.read_text().splitlines()]
    committee = row["verdicts"][-1]
    assert committee["stage"] == "committee" and committee["usage"]["prompt_tokens"] <= BUDGET
    (vote,) = committee["details"]["votes"]
    assert vote["judge"] == f"judge1:{ALIAS}" and vote["error"] is None  # the grammar made it readable
    assert set(vote["scores"]) == {"correctness", "completeness", "satisfaction", "creativity"}
    assert row["outcome"] == "accepted"
    records = read_records(paths.failures) + read_records(paths.dialogues)
    assert len(records) == 1 and stats.phase2.episodes == 1
    assert records[0].label in (
        "state_mismatch",
        "missing_output",
        "policy_violation",
        "turn_limit",
        "model_error",
        "success",
    )
    assert records[0].usage.completion_tokens > 0
