"""Reverse task recombination: accepted tasks of one user joined into a longer task.

The gold actions are concatenated (identification and other repeated reads once), the goals' requests
concatenated with their action indices re-numbered, and the outputs joined. The result is a blueprint
like any other: the driver re-executes it from the initial state and re-checks it, so conflicting
parents (cancel an order, then modify it) are rejected. The instruction is written by an LLM, or,
offline, the parents' instructions are joined with a connective.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from apigen_gym.core.domain import Domain
from apigen_gym.core.task import Action, Goal, Request, Task
from apigen_gym.generation.blueprint import Blueprint
from apigen_gym.generation.personas import PERSONAS
from apigen_gym.generation.proposers import limited_complete
from apigen_gym.generation.validators import identity_tools, write_names
from apigen_gym.kit.sampling import PERSONAS as SAMPLER_PERSONAS
from apigen_gym.llm.structured import json_object
from apigen_gym.llm.types import LLMError, Usage

if TYPE_CHECKING:
    from apigen_gym.llm.client import LLMClient

CONNECTIVE = "Once that is done, you have one more thing to sort out in the same conversation."
TRIPLE_SHARE = 0.25
"""Share of candidates (for users with three or more tasks) that join three tasks instead of two."""
_FIRST_SENTENCE = re.compile(r"^(.*?[.!?])\s+(?=[A-Z])", re.DOTALL)


def _strip_persona(instruction: str) -> str:
    for sentence in (*PERSONAS, *SAMPLER_PERSONAS):
        if instruction.endswith(sentence):
            return instruction[: -len(sentence)].rstrip()
    return instruction


def _first_sentence(instruction: str) -> str:
    match = _FIRST_SENTENCE.match(instruction)
    return match.group(1) if match else ""


def _who(sentence: str) -> str:
    """Who an opening sentence introduces: ``You are Ann Lee, and ...`` -> ``You are Ann Lee``."""
    return sentence.split(",")[0].rstrip(".") if sentence.startswith("You are ") else sentence


def join_instructions(instructions: Sequence[str]) -> str:
    """The offline combined instruction: each in turn, who the user is said once, the persona at the end."""
    who = _who(_first_sentence(instructions[0]))
    parts = []
    for number, text in enumerate(instructions):
        last = number == len(instructions) - 1
        body = text if last else _strip_persona(text)
        if number:
            parts.append(CONNECTIVE)
            opening = _first_sentence(body)
            if who and opening and _who(opening) == who:
                body = body[len(opening) :].lstrip()
        parts.append(body)
    return " ".join(p for p in parts if p)


def combine(domain: Domain, tasks: Sequence[Task], instruction: str | None = None) -> Blueprint:
    """The parents as one blueprint (identification and repeated reads once, requests re-indexed)."""
    writes, identify = write_names(domain), identity_tools(domain)
    actions: list[Action] = []
    requests: list[Request] = []
    known: dict[str, str] = {}
    outputs: list[str] = []
    for task in tasks:
        where: list[int] = []
        for action in task.actions:
            identified = [i for i, a in enumerate(actions) if a.name in identify]
            if action.name in identify and identified:
                where.append(identified[0])
            elif action.name not in writes and action in actions:
                where.append(actions.index(action))
            else:
                where.append(len(actions))
                actions.append(action)
        goal = task.effective_goal()
        for request in goal.requests:
            served = {i for r in requests for i in r.served_by}
            mapped = (where[i] for i in request.actions if 0 <= i < len(where))
            indices = [i for i in dict.fromkeys(mapped) if i not in served]
            update: dict[str, object] = {"actions": indices}
            if request.twist is not None:  # its actions after the moment, re-numbered alike
                after = (where[i] for i in request.twist.actions if 0 <= i < len(where))
                kept = [i for i in dict.fromkeys(after) if i not in served and i not in indices]
                update["twist"] = request.twist.model_copy(update={"actions": kept})
            requests.append(request.model_copy(update=update))
        for key, value in goal.known.items():
            known.setdefault(key, value)
        outputs += [o for o in task.outputs if o not in outputs]
    return Blueprint(
        user_id=tasks[0].user_id or "",
        instruction=instruction or join_instructions([t.instruction for t in tasks]),
        goal=Goal(known=known, requests=requests),
        actions=actions,
        outputs=outputs,
        source="recombined",
        parents=[t.id for t in tasks],
    )


def candidates(tasks: Sequence[Task], rng: random.Random) -> list[tuple[Task, ...]]:
    """Groups of 2 (sometimes 3) tasks of the same user, in a seeded random order."""
    by_user: dict[str, list[Task]] = {}
    for task in sorted(tasks, key=lambda t: t.id):
        by_user.setdefault(task.user_id or "", []).append(task)
    groups: list[tuple[Task, ...]] = []
    for _, mine in sorted(by_user.items()):
        groups += list(itertools.combinations(mine, 2))
        if len(mine) >= 3:
            triples = list(itertools.combinations(mine, 3))
            groups += rng.sample(triples, max(1, int(TRIPLE_SHARE * len(triples))))
    rng.shuffle(groups)
    return groups


RECOMBINE_SYSTEM = """\
You merge instructions for a simulated customer of a customer-service agent. You are given several \
instructions written for the same customer. Write one instruction, in the second person, for a \
single conversation in which the customer makes all these requests in the given order. Keep every \
fact, id, amount, choice and condition exactly; mention who the customer is once; keep a single \
persona sentence at the end. Answer with one JSON object and nothing else: {"instruction": "..."}"""


class CombinedInstruction(BaseModel):
    instruction: str = Field(min_length=1)


class Recombiner:
    """Writes the combined instruction: with an LLM when given one, else by joining the instructions."""

    def __init__(
        self,
        client: LLMClient | None = None,
        limiter: asyncio.Semaphore | None = None,
        max_tokens: int | None = None,
    ):
        self.client = client
        self.limiter = limiter
        self.max_tokens = max_tokens

    async def blueprint(self, domain: Domain, tasks: Sequence[Task]) -> tuple[Blueprint, str | None]:
        """The combined blueprint, and a note when the LLM could not write the instruction."""
        if self.client is None:
            return combine(domain, tasks), None
        numbered = "\n".join(f"{n}. {t.instruction}" for n, t in enumerate(tasks, 1))
        messages = [
            {"role": "system", "content": RECOMBINE_SYSTEM},
            {"role": "user", "content": f"Instructions, in order:\n{numbered}"},
        ]
        try:
            answer = await limited_complete(
                self.client,
                messages,
                self.limiter,
                "recombine",
                CombinedInstruction,
                max_tokens=self.max_tokens,
            )
        except LLMError as exc:
            return combine(domain, tasks), f"llm error: {exc.label}; instructions joined instead"
        usage, cost = answer.usage, answer.cost
        model = self.client.settings.model
        written: str | None = None
        note = "cut answer: instructions joined instead" if answer.cut else None
        if not answer.cut:
            try:
                written = CombinedInstruction.model_validate(json_object(answer.content)).instruction
            except (ValueError, ValidationError):
                note = "bad answer: instructions joined instead"
        combined = combine(domain, tasks, written)
        return combined.model_copy(update={"usage": usage or Usage(), "cost": cost, "model": model}), note
