"""The generation roles' prompts within a token budget: small-context models (8k) get every request.

The proposer's and the judges' prompts show less of a context (shorter lists, fewer examples, tools as
signatures) until the estimate fits; what a proposer needs to write a valid blueprint (ids, argument
names and types, enums) stays. ``tests/test_llamacpp.py`` checks the estimate against a real tokenizer.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from apigen_gym.cli import main
from apigen_gym.core.domain import load_domain
from apigen_gym.generation.blueprint import ProposalError
from apigen_gym.generation.budget import (
    DEFAULT_PROMPT_BUDGET,
    MORE,
    estimate_tokens,
    messages_tokens,
    trimmed,
)
from apigen_gym.generation.config import GenerationConfig, deciding, saved_config
from apigen_gym.generation.context import Context
from apigen_gym.generation.phase1 import Phase1Worker
from apigen_gym.generation.proposers import (
    DETAILS,
    LLMProposer,
    PromptTooLong,
    TemplateProposer,
    draft_schema,
    proposer_messages,
)
from apigen_gym.generation.signatures import signature
from apigen_gym.generation.validators import changed_fields, check_rules, judge_messages
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings

DOMAINS = ["retail", "airline", "travel"]
CONTEXTS = 24


def contexts(domain: str) -> tuple[Phase1Worker, list[Context]]:
    run = Phase1Worker(GenerationConfig(domain=domain, n=1))  # what samples the contexts
    return run, [run.context(i) for i in range(CONTEXTS)]


@pytest.mark.parametrize("domain", DOMAINS)
def test_proposer_prompts_fit_the_budget_and_keep_what_a_blueprint_needs(domain: str) -> None:
    run, sampled = contexts(domain)
    for context in sampled:
        messages = proposer_messages(context, ["Rejected at format: unknown tool: x. " * 20] * 4)
        assert messages_tokens(messages) <= DEFAULT_PROMPT_BUDGET
        text = messages[1]["content"]
        assert f"user_id: {context.user_id}" in text and f'"{context.user_id}":' in text
        for name in context.tools:  # each tool the walk needs, with its arguments and their enums
            tool = run.domain.tools.get(name)
            assert tool is not None
            (line,) = [line for line in text.splitlines() if line.startswith(f"- {name}(")]
            for argument, schema in tool.schema["function"]["parameters"]["properties"].items():
                assert re.search(rf"\b{argument}\??: ", line)
                for value in schema.get("enum", []):
                    assert json.dumps(value) in line
        for walk in context.walks:
            assert set(walk) <= set(context.tools)
        shown_rows = json.loads(text.split("not shown):\n", 1)[1].split("\n\n", 1)[0])
        for table, rows in context.rows.items():  # every table, and at least the first record of each
            assert next(iter(rows)) in shown_rows[table]
        assert "Round 4:" in text  # the latest feedback round is always there


def test_a_smaller_budget_shows_less_and_the_smallest_is_refused_before_any_call() -> None:
    _, sampled = contexts("retail")
    context = max(sampled, key=lambda c: len(json.dumps(c.rows)))
    roomy, tight = proposer_messages(context, [], 20_000), proposer_messages(context, [], 3000)
    assert messages_tokens(tight) <= 3000 < messages_tokens(roomy)
    assert "## Accepted tasks" in roomy[1]["content"] and "## Accepted tasks" not in tight[1]["content"]
    with pytest.raises(PromptTooLong, match=r"about \d+ tokens, over the budget of 1000"):
        proposer_messages(context, [], 1000)
    # nothing listens at this address: the proposer says why without calling the server
    client = LLMClient(LLMSettings(model="m", base_url="http://127.0.0.1:9/v1", max_retries=0))
    proposal = asyncio.run(LLMProposer(client, prompt_budget=1000).propose(context, [], random.Random(0)))
    assert isinstance(proposal, ProposalError) and proposal.reason.startswith("prompt: ")
    assert client.calls == 0


def test_details_go_from_most_to_least() -> None:
    for more, less in zip(DETAILS, DETAILS[1:]):
        assert less.width <= more.width and less.examples <= more.examples and less.feedback <= more.feedback
        assert (less.records or 99) <= (more.records or 99)


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_response_schema_holds_the_contexts_tools_and_user(domain: str) -> None:
    run, sampled = contexts(domain)
    template = TemplateProposer.for_domain(run.domain, run.database)
    checked = 0
    for index, context in enumerate(sampled):
        schema = draft_schema(context).schema
        calls = schema["$defs"]["Action"]["anyOf"]
        assert [c["properties"]["name"]["const"] for c in calls] == context.tools
        blueprint = template.propose_now(context, random.Random(index))
        if isinstance(blueprint, ProposalError) or context.twist is not None:
            continue
        answer: dict[str, Any] = {
            "user_id": blueprint.user_id,
            "instruction": blueprint.instruction,
            "goal": blueprint.goal.model_dump(mode="json"),
            "actions": [a.model_dump(mode="json") for a in blueprint.actions],
            "outputs": blueprint.outputs,
        }
        if {a.name for a in blueprint.actions} <= set(context.tools):
            jsonschema.validate(answer, schema)  # a valid task of this context is a valid answer
            checked += 1
        other = {**answer, "actions": [{"name": "no_such_tool", "arguments": {}}]}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(other, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**answer, "user_id": "someone_else"}, schema)
    assert checked >= 3


@pytest.mark.parametrize("domain", DOMAINS)
def test_judge_prompts_fit_and_show_what_changed(domain: str) -> None:
    run, sampled = contexts(domain)
    judged = 0
    for index, context in enumerate(sampled):
        blueprint = run.proposer.propose_now(context, random.Random(index))  # type: ignore[attr-defined]
        check = check_rules(run.domain, run.database, blueprint)
        if not check.passed or check.session is None:
            continue
        policy = "\n\n".join(f"## {s.title}\n{s.text}" for s in context.policy)
        messages = judge_messages(run.domain, blueprint, check.session, policy)
        assert messages_tokens(messages) <= DEFAULT_PROMPT_BUDGET
        for action in blueprint.actions:
            assert json.dumps(action.name) in messages[1]["content"]
        changes = changed_fields(check.session)
        for table, records in check.state_change.items():
            for key, record in records.items():
                before = run.database.table(table).get(key)
                if record is not None and before is not None:  # only the fields that changed
                    assert set(changes[table][key]) == {f for f in record if before.get(f) != record[f]}
        judged += 1
    assert judged >= CONTEXTS // 2


def test_trimming_keeps_records_whole_and_shortens_collections() -> None:
    record = {
        "name": {"first": "Ann", "last": "Lee"},
        "variants": {str(n): {"item_id": str(n), "price": n} for n in range(10)},
        "orders": [f"#W{n}" for n in range(30)],
        "flights": [{"number": f"F{n}"} for n in range(5)],
    }
    short = trimmed(record, 2, keep=frozenset({"7", "F3"}))
    assert short["name"] == record["name"]  # a record's fields are never dropped
    assert list(short["variants"]) == ["0", "7", MORE] and short["variants"][MORE] == "8 more"
    assert len(short["orders"]) == 9 and short["orders"][-1] == f"{MORE} 22 more"  # plain values: 4 × width
    assert {"number": "F3"} in short["flights"] and short["flights"][-1] == f"{MORE} 3 more"
    assert trimmed(record, 50) == record


def test_signatures_name_arguments_types_enums_and_defaults() -> None:
    search = load_domain("travel").tools.get("search_flights")
    assert search is not None
    text = signature(search.schema, "read")
    assert text.startswith(
        'search_flights(origin: str, destination: str, date: str, cabin?: "basic_economy"|"economy"|'
        '"business" = "economy", travellers?: int = 1, max_price?: float|null'
    )
    book = load_domain("airline").tools.get("book_reservation")
    assert book is not None
    notes = signature(book.schema, "write", notes=True)
    assert "flights: [{flight_number: str, date: str}]" in notes and "\n    flights: " in notes
    assert estimate_tokens(text) < len(json.dumps(search.schema)) / 4  # far smaller than the schema


def test_the_budget_is_a_setting_of_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = ["generate", "--domain", "retail", "-n", "1", "--phase", "1", "--out"]
    assert main([*run, str(tmp_path / "a")]) == 0
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["prompt_budget"] == DEFAULT_PROMPT_BUDGET
    # offline, the budget decides nothing: the run resumes with another one
    assert main([*run, str(tmp_path / "a"), "--prompt-budget", "3000"]) == 0
    assert main([*run, str(tmp_path / "b"), "--prompt-budget", "500"]) == 2
    assert "prompt_budget" in capsys.readouterr().err and not (tmp_path / "b").exists()
    online = GenerationConfig(domain="retail", n=1, proposer=LLMSettings(model="m"), prompt_budget=3000)
    assert deciding(saved_config(online))["prompt_budget"] == 3000  # with a model, it binds the run
