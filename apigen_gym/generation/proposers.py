"""Proposers turn a context into a blueprint: the LLM proposer and the offline template proposer.

Both implement :class:`Proposer`: ``await propose(context, feedback, rng)`` returns a
:class:`Blueprint` or a :class:`ProposalError`, never raises for a bad answer or a failed call.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import random
import re
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field, ValidationError

from apigen_gym.core.database import Database
from apigen_gym.core.domain import Domain
from apigen_gym.core.task import Action, Goal, Task
from apigen_gym.generation.blueprint import Blueprint, ProposalError
from apigen_gym.generation.context import Context
from apigen_gym.kit.sampling import PERSONAS, BuildTask, steering
from apigen_gym.llm.settings import Role
from apigen_gym.llm.structured import json_object
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
from an earlier call), then the writes. Arguments follow each tool's schema exactly.
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
7. A request may evolve during the conversation; it then carries "twist": {{"kind", "when", "cue", \
"text", "actions", "abandoned", "condition"}}. The request's own actions are the reads before the \
moment (no write); twist.actions are the indices of the gold actions after it, with the writes of \
what the customer finally wants; twist.text is what the customer says at the moment. Kinds: \
"change_of_mind": the customer first asks for one change and, when the agent asks to confirm it \
(when "confirm") or tells them a figure found by a read (when "mention", cue = that figure, also an \
output), asks for something else instead; "late_context": when asked to confirm, the customer \
reveals a fact they had not mentioned that changes the write; "follow_up": once the agent tells \
them an answer (when "mention", cue = the answer, one of the outputs), they ask for what that answer \
calls for, and condition says which answers lead there. abandoned holds the writes that must not \
be made (the first wish, or the other branch of a follow-up): never among the gold actions, yet \
valid at the moment. The instruction tells the customer when and how their wish changes.

Answer with one JSON object and nothing else, in this form:
{{"user_id": "...", "instruction": "...", "goal": {{"known": {{"email": "..."}}, "requests": \
[{{"text": "...", "actions": [0, 1, 2], "refuse": null, "twist": null}}]}}, "actions": [{{"name": \
"...", "arguments": {{}}}}], "outputs": []}}"""

CUT_ANSWER = "cut: the answer stopped at its max_tokens cap (finish_reason length) and was not read"
"""Why an answer cut short is rejected: a partial blueprint is not parsed as a full one."""

FEEDBACK_HEADER = "## Your earlier attempts were rejected. Fix every point below"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _tools_text(context: Context) -> str:
    lines = []
    for tool in context.domain.tools:
        params = tool.schema["function"]["parameters"]
        lines.append(f"- {tool.name} ({tool.kind.value}): {tool.description} Arguments: {_compact(params)}")
    return "\n".join(lines)


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


def proposer_messages(context: Context, feedback: Sequence[str]) -> list[dict[str, str]]:
    """The chat messages asking for one blueprint."""
    parts = [
        f"## Tools\n{_tools_text(context)}",
        "## Policy excerpts\n" + "\n\n".join(f"### {s.title}\n{s.text}" for s in context.policy),
        f"## The customer\nuser_id: {context.user_id}\nTheir database rows, by table and id:\n"
        f"{_compact(context.rows)}",
        "## API walks to build the task on\n" + "\n".join(" -> ".join(w) for w in context.walks),
        f"## Write tools at the core of the task\n{', '.join(context.write_tools)}",
        f"## Persona (the last sentence of the instruction)\n{context.persona}",
    ]
    if context.twist is not None:
        kind = context.twist.replace("_", " ")
        parts.append(f"## The goal evolves\nOne request must have a {context.twist} twist (a {kind}; see 7).")
    if context.examples:
        parts.append(
            "## Accepted tasks, as examples of the format\n" + "\n".join(map(example_json, context.examples))
        )
    if feedback:
        rounds = "\n".join(f"Round {n}: {text}" for n, text in enumerate(feedback, 1))
        parts.append(f"{FEEDBACK_HEADER}\n{rounds}")
    parts.append("Write the task now, as one JSON object.")
    return [
        {"role": "system", "content": PROPOSER_SYSTEM.format(domain=context.domain.name)},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


class BlueprintDraft(BaseModel):
    """The JSON an LLM proposer must answer with."""

    user_id: str | None = None
    instruction: str = Field(min_length=1)
    goal: Goal
    actions: list[Action] = Field(min_length=1)
    outputs: list[str] = Field(default_factory=list)


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
    schema: type[BaseModel],
    **params: Any,
) -> Completion:
    """One JSON answer of ``schema`` for ``role``, holding ``limiter`` (the bound on calls in flight)."""
    async with _limit(limiter):
        return await client.complete(messages, role=role, schema=schema, **params)


class LLMProposer:
    """Asks a model for a blueprint as JSON (a ``json_schema`` response format), parsed with pydantic.

    ``max_tokens``: the cap of each answer (default: the client's setting, else the proposer role's).
    """

    def __init__(
        self, client: LLMClient, limiter: asyncio.Semaphore | None = None, max_tokens: int | None = None
    ):
        self.client = client
        self.limiter = limiter
        self.max_tokens = max_tokens
        self.model: str | None = client.settings.model

    async def propose(
        self, context: Context, feedback: list[str], rng: random.Random
    ) -> Blueprint | ProposalError:
        messages = proposer_messages(context, feedback)
        try:
            answer = await limited_complete(
                self.client,
                messages,
                self.limiter,
                "proposer",
                BlueprintDraft,
                seed=rng.randrange(2**31),
                max_tokens=self.max_tokens,
            )
        except LLMError as exc:
            return ProposalError(reason=f"llm error: {exc.label}", model=self.model)
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
