"""Proposers turn a context into a blueprint: the LLM proposer and the offline template proposer.

Both implement :class:`Proposer`: ``await propose(context, feedback, rng)`` returns a
:class:`Blueprint` or a :class:`ProposalError`, never raises for a bad answer or a failed call.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
import json
import random
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field, ValidationError

from apigen_gym.core.database import Database
from apigen_gym.core.domain import Domain
from apigen_gym.core.task import Action, Goal, Task
from apigen_gym.generation.blueprint import Blueprint, ProposalError
from apigen_gym.generation.budget import (
    DEFAULT_PROMPT_BUDGET,
    MORE,
    PromptTooLong,
    clipped,
    fitted,
    ids_in,
    trimmed,
)
from apigen_gym.generation.context import USERS, Context
from apigen_gym.generation.signatures import signature
from apigen_gym.kit.sampling import PERSONAS, BuildTask, steering
from apigen_gym.llm.settings import Role
from apigen_gym.llm.structured import JsonSchema, Schema, json_object
from apigen_gym.llm.types import Completion, LLMError

if TYPE_CHECKING:
    from apigen_gym.llm.client import LLMClient

TEMPLATE_TRIES = 8
"""Builds per template proposal, looking for a task that uses one of the context's write tools."""


class Proposer(Protocol):
    """Anything that proposes blueprints; ``model`` names it in provenance (``None``: the template)."""

    model: str | None

    async def propose(
        self, context: Context, feedback: list[str], rng: random.Random
    ) -> Blueprint | ProposalError: ...


# --- template -----------------------------------------------------------------------------------


def sampler_builder(domain: str) -> BuildTask:
    """The ``build_task`` of ``apigen_gym.domains.<domain>.sampler``; ValueError when there is none."""
    name = f"apigen_gym.domains.{domain}.sampler"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ValueError(
            f"domain {domain} has no task sampler ({name}): give a proposer model instead"
        ) from None
    build: BuildTask | None = getattr(module, "build_task", None)
    if build is None:
        raise ValueError(f"{name} has no build_task: give a proposer model instead")
    return build


def with_persona(instruction: str, persona: str) -> str:
    """``instruction`` with the sampler's closing persona sentence replaced by ``persona``."""
    for sentence in PERSONAS:
        if instruction.endswith(sentence):
            instruction = instruction[: -len(sentence)].rstrip()
            break
    return f"{instruction} {persona}".strip()


def blueprint_of(task: Task, source: str = "template", model: str | None = None) -> Blueprint:
    """A task as a blueprint (its goal made explicit)."""
    return Blueprint.model_validate(
        {
            "user_id": task.user_id or "",
            "instruction": task.instruction,
            "goal": task.effective_goal(),
            "actions": task.actions,
            "outputs": task.outputs,
            "source": source,
            "model": model,
            "meta": {k: v for k, v in task.meta.items() if k in ("intents", "writes", "twists")},
        }
    )


LEAD_INS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (r"\bI'd like to\b|\bI want to\b", ("I'd like to", "I would like to", "I want to", "I need to")),
        (r"(?:^|(?<=[.!?] ))Please\b", ("Please", "Could you please", "Can you please", "Would you please")),
        (r"(?:^|(?<=[.!?] ))Could you\b", ("Could you", "Can you", "Would you")),
        (r"(?:^|(?<=[.!?] ))For my\b", ("For my", "Regarding my", "About my", "On my")),
        (r"\bWhat is\b", ("What is", "What's")),
    )
)
"""How a customer may lead into a wish: the sampler writes one of these, the template proposer any."""
CLOSINGS = ("", "", "", "", " Thanks!", " Thank you.")


def reword(text: str, rng: random.Random) -> str:
    """``text`` with its lead-ins reworded (each drawn with ``rng``) and maybe a thank-you; the facts
    (ids, names, amounts) are never touched."""
    for pattern, words in LEAD_INS:
        text = pattern.sub(partial(_one_of, words, rng), text)
    return text + rng.choice(CLOSINGS)


def _one_of(words: Sequence[str], rng: random.Random, _: re.Match[str]) -> str:
    return rng.choice(words)


def reworded(task: Task, rng: random.Random) -> Task:
    """``task`` with the customer's words of each request (and twist) reworded."""
    goal = task.effective_goal()
    requests = []
    for request in goal.requests:
        update: dict[str, Any] = {"text": reword(request.text, rng)}
        if request.twist is not None:
            update["twist"] = request.twist.model_copy(update={"text": reword(request.twist.text, rng)})
        requests.append(request.model_copy(update=update))
    return task.model_copy(update={"goal": goal.model_copy(update={"requests": requests})})


class TemplateProposer:
    """The offline proposer: the sampler's ``build_task`` on the context's user; feedback is ignored.

    The sampler words each kind of request one way; the proposer rewords the customer's lead-ins from
    seeded banks (:func:`reword`), so that generated data does not read like a single template.
    """

    model: str | None = None

    def __init__(self, database: Database, build: BuildTask, tries: int = TEMPLATE_TRIES):
        self.database = database
        self.build = build
        self.tries = tries

    @classmethod
    def for_domain(cls, domain: Domain, database: Database) -> TemplateProposer:
        return cls(database, sampler_builder(domain.name))

    def propose_now(self, context: Context, rng: random.Random) -> Blueprint | ProposalError:
        """A task for the context's user, preferring one with the context's twist (when it asks for one
        and the user's data allows it: half the tries), then one using the context's write tools."""
        fallback: Task | None = None
        best = (False, False)
        with steering(context.write_tools):  # the sampler aims at those writes: fewer builds
            for attempt in range(self.tries):
                twist = context.twist if attempt <= self.tries // 2 else None
                task = self.build(self.database, rng, context.user_id, twist) if twist else None
                task = task or self.build(self.database, rng, context.user_id)
                if task is None:
                    continue
                evolving = context.twist is None or task.effective_goal().evolving
                score = (evolving, any(a.name in context.write_tools for a in task.actions))
                if fallback is None or score > best:
                    fallback, best = task, score
                if all(score):
                    break
        if fallback is None:
            return ProposalError(reason=f"no task: the sampler built none for user {context.user_id}")
        task = fallback.model_copy(
            update={"instruction": with_persona(fallback.instruction, context.persona)}
        )
        return blueprint_of(reworded(task, rng))

    async def propose(
        self, context: Context, feedback: list[str], rng: random.Random
    ) -> Blueprint | ProposalError:
        return self.propose_now(context, rng)


# --- LLM ----------------------------------------------------------------------------------------

PROPOSER_SYSTEM = """\
You design tasks for customer-service agents of the {domain} domain. A task is what a simulated \
customer wants from the agent, plus the exact tool calls a perfect agent makes to serve it (the gold \
actions) and the facts the agent must tell the customer (the outputs). The gold actions are executed \
on the database, checked against the policy and reviewed, so they must be exactly right.

What a good task is:
1. It serves one customer, the user given to you, and is built on the database rows you are shown: \
use their real ids, item ids, prices and payment methods; never invent one.
2. It centres on the write tools you are given: the customer wants what those tools do. Every write \
must be allowed by the policy in the state it runs in, after the earlier writes of the same task.
3. The gold actions are the complete sequence of calls, in order: identify the customer as the \
policy requires, then the reads the agent needs to find what it acts on (each using an id learned \
from an earlier call), then the writes. Call only the tools you are shown, with the arguments \
their signatures name: name(argument: type, optional?: type = default); "a"|"b" lists the only \
allowed values, [T] is a list, {{key: T}} an object.
4. The instruction speaks to the customer in the second person ("You are ... You want to ..."). It \
gives them every fact they need: who they are (the facts used to identify them), what they want and \
in which order, the choices the agent will ask about (a reason, a payment method, an option), and \
how to react. It names no tool. It ends with the persona sentence you are given.
5. goal.known holds the facts the customer can tell when asked (for example an email address, or a \
name and zip code). goal.requests lists the requests in the order the customer makes them: the \
customer's own words in the first person, and the 0-based indices of the gold actions serving it \
(the identification belongs to the first request). A request the policy forbids carries "refuse" \
with the reason; its actions are reads only.
6. outputs are the exact values the agent must say (an amount such as 54.04, a count, a tracking \
number), without commas; [] when the customer asks for no information.
Answer with one JSON object and nothing else, in this form:
{{"user_id": "...", "instruction": "...", "goal": {{"known": {{"email": "..."}}, "requests": \
[{{"text": "...", "actions": [0, 1, 2], "refuse": null, "twist": null}}]}}, "actions": [{{"name": \
"...", "arguments": {{}}}}], "outputs": []}}"""

TWIST_RULES = """\
One request must evolve during the conversation, with a {kind} twist: it carries "twist": {{"kind", \
"when", "cue", "text", "actions", "abandoned", "condition"}}. The request's own actions are the reads \
before the moment (no write); twist.actions are the indices of the gold actions after it, with the \
writes of what the customer finally wants; twist.text is what the customer says at the moment. Kinds: \
"change_of_mind": the customer first asks for one change and, when the agent asks to confirm it \
(when "confirm") or tells them a figure found by a read (when "mention", cue = that figure, also an \
output), asks for something else instead; "late_context": when asked to confirm, the customer \
reveals a fact they had not mentioned that changes the write; "follow_up": once the agent tells \
them an answer (when "mention", cue = the answer, one of the outputs), they ask for what that answer \
calls for, and condition says which answers lead there. abandoned holds the writes that must not \
be made (the first wish, or the other branch of a follow-up): never among the gold actions, yet \
valid at the moment. The instruction tells the customer when and how their wish changes."""
"""The rules of an evolving goal, in the prompts of the contexts that ask for one."""

CUT_ANSWER = "cut: the answer stopped at its max_tokens cap (finish_reason length) and was not read"
"""Why an answer cut short is rejected: a partial blueprint is not parsed as a full one."""

FEEDBACK_HEADER = "## Your earlier attempts were rejected. Fix every point below"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Detail:
    """How much of a context a proposer's prompt shows; the first of :data:`DETAILS` that fits the
    prompt budget is used."""

    width: int
    """Entries kept of each list, and of each mapping of like entries, in the database rows."""
    examples: int
    """Accepted tasks shown as examples."""
    feedback: int
    """Latest feedback rounds shown."""
    notes: bool
    """Each tool argument's own description (formats, such as ``YYYY-MM-DD``)."""
    policy_chars: int | None = None
    """Characters kept of each policy section (``None``: all)."""
    describe: bool = True
    """Each tool's description after its signature."""
    records: int | None = None
    """Records shown per table besides the user's (``None``: every record of the context)."""


DETAILS: tuple[Detail, ...] = (
    Detail(width=6, examples=2, feedback=5, notes=True),
    Detail(width=4, examples=1, feedback=3, notes=True),
    Detail(width=3, examples=1, feedback=2, notes=False),
    Detail(width=2, examples=0, feedback=2, notes=False, policy_chars=1200, records=4),
    Detail(width=1, examples=0, feedback=1, notes=False, policy_chars=600, records=3),
    Detail(width=1, examples=0, feedback=1, notes=False, policy_chars=300, describe=False, records=2),
)


def _tools_text(context: Context, detail: Detail) -> str:
    shown = set(context.tools)
    tools = [tool for tool in context.domain.tools if tool.name in shown]
    return "\n".join(
        "- " + signature(tool.schema, tool.kind.value, detail.notes, detail.describe) for tool in tools
    )


def rows_text(context: Context, width: int, records: int | None = None) -> str:
    """The context's rows as compact JSON: at most ``records`` per table besides the user's, each
    trimmed to ``width`` (entries that the user's own records name, such as their orders' items or
    their reservations' flight dates, kept first)."""
    user = context.rows.get(USERS, {}).get(context.user_id, {})
    named = ids_in([user])
    own = [record for table in context.rows.values() for key, record in table.items() if key in named]
    keep = ids_in([user, *own])
    rows: dict[str, dict[str, Any]] = {}
    for table, table_rows in context.rows.items():
        items = list(table_rows.items())
        shown = items if records is None or table == USERS else items[:records]
        rows[table] = {key: trimmed(record, width, keep) for key, record in shown}
        if len(shown) < len(items):
            rows[table][MORE] = f"{len(items) - len(shown)} more"
    return _compact(rows)


def example_json(task: Task) -> str:
    """A task as the proposer is asked to write one."""
    return _compact(
        {
            "user_id": task.user_id,
            "instruction": task.instruction,
            "goal": task.effective_goal().model_dump(mode="json"),
            "actions": [a.model_dump(mode="json") for a in task.actions],
            "outputs": task.outputs,
        }
    )


def _messages(context: Context, feedback: Sequence[str], detail: Detail) -> list[dict[str, str]]:
    policy = "\n\n".join(f"### {s.title}\n{clipped(s.text, detail.policy_chars)}" for s in context.policy)
    parts = [
        f"## Tools (only these)\n{_tools_text(context, detail)}",
        f"## Policy excerpts\n{policy}",
        f"## The customer\nuser_id: {context.user_id}\nTheir database rows, by table and id (long "
        f"lists shortened: {MORE!r} says how many entries are not shown):\n"
        + rows_text(context, detail.width, detail.records),
        "## API walks to build the task on\n" + "\n".join(" -> ".join(w) for w in context.walks),
        f"## Write tools at the core of the task\n{', '.join(context.write_tools)}",
        f"## Persona (the last sentence of the instruction)\n{context.persona}",
    ]
    if context.twist is not None:
        parts.append(f"## The goal evolves\n{TWIST_RULES.format(kind=context.twist)}")
    examples = context.examples[: detail.examples]
    if examples:
        shown = "\n".join(map(example_json, examples))
        parts.append(f"## Accepted tasks, as examples of the format\n{shown}")
    if feedback:
        first = max(0, len(feedback) - detail.feedback)
        rounds = "\n".join(f"Round {n}: {text}" for n, text in enumerate(feedback[first:], first + 1))
        parts.append(f"{FEEDBACK_HEADER}\n{rounds}")
    parts.append("Write the task now, as one JSON object.")
    return [
        {"role": "system", "content": PROPOSER_SYSTEM.format(domain=context.domain.name)},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def proposer_messages(
    context: Context, feedback: Sequence[str], budget: int = DEFAULT_PROMPT_BUDGET
) -> list[dict[str, str]]:
    """The chat messages asking for one blueprint, as detailed as ``budget`` (estimated prompt tokens)
    allows; :class:`PromptTooLong` when even the least detailed one is over it."""
    return fitted(DETAILS, partial(_messages, context, feedback), budget, "proposer prompt for this context")


class BlueprintDraft(BaseModel):
    """The JSON an LLM proposer must answer with."""

    user_id: str | None = None
    instruction: str = Field(min_length=1)
    goal: Goal
    actions: list[Action] = Field(min_length=1)
    outputs: list[str] = Field(default_factory=list)


@cache
def _draft_schema() -> dict[str, Any]:
    return BlueprintDraft.model_json_schema()


DRAFT_LIMITS = {"instruction": 1500, "text": 600, "requests": 4, "actions": 24, "outputs": 8, "output": 80}
"""Bounds a server enforcing :func:`draft_schema` keeps an answer within (about twice the largest shipped
task's), so that a small model's answer cannot run on to ``max_tokens``; parsing does not enforce them."""


def draft_schema(context: Context) -> JsonSchema:
    """:class:`BlueprintDraft`'s JSON schema narrowed to ``context``: its user, calls of the tools it
    shows (each with its own arguments: names, types, enums), a twist only when the context asks for
    one, and lengths bounded (:data:`DRAFT_LIMITS`), so that a server enforcing the schema lets a
    model write no other call and no endless text."""
    schema = copy.deepcopy(_draft_schema())
    calls = []
    for tool in context.domain.tools:
        if tool.name in context.tools:
            arguments = {**tool.schema["function"]["parameters"], "additionalProperties": False}
            calls.append(
                {
                    "type": "object",
                    "properties": {"name": {"const": tool.name}, "arguments": arguments},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
            )
    limits = DRAFT_LIMITS
    defs, top = schema["$defs"], schema["properties"]
    defs["Action"] = {"anyOf": calls}
    top["user_id"] = {"const": context.user_id}
    schema["required"] = ["user_id", *schema.get("required", [])]
    top["instruction"]["maxLength"] = limits["instruction"]
    top["actions"]["maxItems"] = limits["actions"]
    top["outputs"].update(maxItems=limits["outputs"])
    top["outputs"]["items"]["maxLength"] = limits["output"]
    defs["Goal"]["properties"]["requests"].update(minItems=1, maxItems=limits["requests"])
    request = defs["Request"]["properties"]
    request["text"]["maxLength"] = limits["text"]
    request["actions"]["maxItems"] = limits["actions"]
    if context.twist is None:
        request["twist"] = {"type": "null"}
    return JsonSchema(BlueprintDraft.__name__, schema)


def schema_errors(exc: ValidationError, limit: int = 5) -> str:
    """A pydantic error as a short list of ``where: what``."""
    parts = [f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors(include_url=False)]
    return "; ".join(parts[:limit]) + ("; ..." if len(parts) > limit else "")


def parse_draft(text: str) -> BlueprintDraft | str:
    """The draft in an answer, or why there is none (``"<kind>: <detail>"``)."""
    try:
        data = json_object(text)
    except ValueError:
        return f"not json: the answer is not a JSON object ({text[:80]!r})"
    try:
        return BlueprintDraft.model_validate(data)
    except ValidationError as exc:
        return f"schema: {schema_errors(exc)}"


@contextlib.asynccontextmanager
async def _limit(limiter: asyncio.Semaphore | None) -> AsyncIterator[None]:
    if limiter is None:
        yield
    else:
        async with limiter:
            yield


async def limited_complete(
    client: LLMClient,
    messages: list[dict[str, str]],
    limiter: asyncio.Semaphore | None,
    role: Role,
    schema: Schema,
    **params: Any,
) -> Completion:
    """One JSON answer of ``schema`` for ``role``, holding ``limiter`` (the bound on calls in flight)."""
    async with _limit(limiter):
        return await client.complete(messages, role=role, schema=schema, **params)


def llm_failure(exc: LLMError) -> str:
    """A failed call as a rejection reason: ``llm error: ...`` when no answer came (the server, the
    network, a refused request), ``model: ...`` when the model answered what the server could not read."""
    return exc.label if exc.kind == "model" else f"llm error: {exc.label}"


class LLMProposer:
    """Asks a model for a blueprint as JSON (a ``json_schema`` response format narrowed to the
    context, see :func:`draft_schema`), parsed with pydantic.

    ``max_tokens``: the cap of each answer (default: the client's setting, else the proposer role's);
    ``prompt_budget``: the estimated prompt tokens a request may hold (see :func:`proposer_messages`).
    """

    def __init__(
        self,
        client: LLMClient,
        limiter: asyncio.Semaphore | None = None,
        max_tokens: int | None = None,
        prompt_budget: int = DEFAULT_PROMPT_BUDGET,
    ):
        self.client = client
        self.limiter = limiter
        self.max_tokens = max_tokens
        self.prompt_budget = prompt_budget
        self.model: str | None = client.settings.model

    async def propose(
        self, context: Context, feedback: list[str], rng: random.Random
    ) -> Blueprint | ProposalError:
        seed = rng.randrange(2**31)
        try:
            messages = proposer_messages(context, feedback, self.prompt_budget)
        except PromptTooLong as exc:
            return ProposalError(reason=str(exc), model=self.model)
        try:
            answer = await limited_complete(
                self.client,
                messages,
                self.limiter,
                "proposer",
                draft_schema(context),
                seed=seed,
                max_tokens=self.max_tokens,
            )
        except LLMError as exc:
            return ProposalError(reason=llm_failure(exc), model=self.model)
        draft = CUT_ANSWER if answer.cut else parse_draft(answer.content)
        if isinstance(draft, str):
            return ProposalError(
                reason=draft, raw=answer.content, model=self.model, usage=answer.usage, cost=answer.cost
            )
        return Blueprint(
            user_id=draft.user_id or context.user_id,
            instruction=draft.instruction,
            goal=draft.goal,
            actions=draft.actions,
            outputs=draft.outputs,
            source="llm",
            model=self.model,
            usage=answer.usage,
            cost=answer.cost,
        )
