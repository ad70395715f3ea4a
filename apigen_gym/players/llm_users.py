"""LLM user simulators: a customer played by a model, and APIGen-MT's best-of-N with a critic.

The model sees the task's instruction and the conversation with roles flipped (the agent's messages
are its ``user`` turns), and writes the customer's next message. Its rules: reveal the goal bit by
bit, never invent facts, stay in persona, end with ``###STOP###``. When the goal evolves, the prompt
also says, request by request, at which moment the customer changes its mind, reveals a late fact or
follows up, and with which words. An answer with no text (empty, or only a tool call) is never sent
as a turn: the client retries it like any bad answer, and after the last retry the episode ends with
a labelled infrastructure error.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from apigen_gym.core.task import Request, Task
from apigen_gym.core.user import STOP, UserSimulator
from apigen_gym.llm.structured import SHORT_TEXT, json_object
from apigen_gym.llm.types import Completion, Usage
from apigen_gym.util.aio import run_sync

if TYPE_CHECKING:
    from apigen_gym.llm.client import LLMClient

AGENT_GREETING = "Hi! How can I help you today?"

USER_PROMPT = """You are role-playing a customer who contacts a customer-service agent. Your situation:

{situation}

How to play:
- Write only the customer's next message: one or two sentences, in your own words.
- Reveal what you want step by step, as a real customer would; answer what the agent asks, and do \
not recite your whole situation at once.
- Use only facts from your situation. If the agent asks for something you were not given, say you \
do not know or do not have it. Never make up names, numbers, ids or addresses.
- Stay in character throughout. Never mention that you are simulated, an AI, or following rules.
- When everything you wanted is done, or the agent has made clear it cannot be done, end the \
conversation: write your closing words, then {stop} on its own line. Do not stop earlier."""

EVOLUTION_HEADER = (
    "\n\nHow your wishes change during the conversation (keep each change for its moment, "
    "never reveal it earlier, and from then on want only what you said then):"
)
_TWIST_WORDS = {
    "change_of_mind": "you change your mind and say",
    "late_context": "you reveal what you had not mentioned yet and say",
    "follow_up": "you follow up and say",
}


def evolution_line(request: Request) -> str:
    """The prompt's line for a request that evolves: what is asked first, the moment, what is said then."""
    twist = request.twist
    if twist is None:
        return ""
    if twist.when == "mention":
        moment = f"When the agent tells you {twist.cue}"
        moment += f" (so {twist.condition})" if twist.condition else ""
    else:
        moment = "When the agent asks you to confirm it"
    return f'- You first ask: "{request.text}" {moment}, {_TWIST_WORDS[twist.kind]}: "{twist.text}"'


def situation(task: Task) -> str:
    """What the simulated customer is told about ``task``: the instruction, and how the goal evolves."""
    lines = [evolution_line(r) for r in task.effective_goal().requests if r.twist is not None]
    return "\n".join([task.instruction + EVOLUTION_HEADER, *lines]) if lines else task.instruction


CRITIC_PROMPT = """You review candidate messages written by a simulated customer, before one is sent.
Judge the candidate against the customer's situation and the conversation so far:
- does it follow the situation faithfully, without inventing facts?
- does it reveal information gradually and answer what the agent asked?
- does it stay in persona and move the conversation towards the goal?
- does it use {stop} only when the goal is met or clearly impossible?
Answer with a JSON object only: {{"score": <integer 0 to 10>, "reason": "<one short sentence>"}}."""


class CriticAnswer(BaseModel):
    """The JSON a best-of-N critic answers with."""

    score: int = Field(ge=0, le=10)
    reason: str = Field("", json_schema_extra=SHORT_TEXT)


class LLMUser(UserSimulator):
    """A customer played by a model through :class:`LLMClient`.

    ``max_tokens``: the cap of each turn (default: the client's setting, else the user role's); ``notes``
    counts what was unusual about this episode's answers (a turn cut at the cap, ...). ``owns_client``:
    :meth:`close` closes the client's connections (a client made for this user, not a shared one).
    """

    name = "llm"

    def __init__(self, client: LLMClient, max_tokens: int | None = None, owns_client: bool = False):
        self.client = client
        self.max_tokens = max_tokens
        self.owns_client = owns_client
        self.usage = Usage()
        self.cost = 0.0
        self.notes: Counter[str] = Counter()
        self._situation = ""
        self._history: list[dict[str, Any]] = []
        self._seed: int | None = None

    def _prompt(self) -> list[dict[str, Any]]:
        system = USER_PROMPT.format(situation=self._situation, stop=STOP)
        return [{"role": "system", "content": system}, *self._history]

    def _count(self, completion: Completion) -> None:
        self.usage = self.usage + completion.usage
        self.cost += completion.cost
        self.notes.update(completion.notes)

    async def _turn(self, seed: int | None) -> Completion:
        """One candidate customer turn, capped and counted."""
        completion = await self.client.complete(
            self._prompt(), role="user", max_tokens=self.max_tokens, seed=seed, text_required=True
        )
        self._count(completion)
        return completion

    async def _reply(self) -> str:
        return (await self._turn(self._seed)).content.strip()

    async def start_async(self, task: Task, seed: int | None = None) -> str:
        self._situation = situation(task)
        self._seed = seed
        self.usage, self.cost = Usage(), 0.0
        self.notes = Counter()
        self._history = [{"role": "user", "content": AGENT_GREETING}]
        return await self._answer()

    async def respond_async(self, message: str) -> str:
        self._history.append({"role": "user", "content": message})
        return await self._answer()

    async def _answer(self) -> str:
        reply = await self._reply()
        self._history.append({"role": "assistant", "content": reply})
        return reply

    def start(self, task: Task, seed: int | None = None) -> str:
        return run_sync(self.start_async(task, seed))

    def respond(self, message: str) -> str:
        return run_sync(self.respond_async(message))

    def _owned(self) -> list[LLMClient]:
        """The clients this user made, and so closes."""
        return [self.client] if self.owns_client else []

    def close(self) -> None:
        for client in self._owned():
            client.close()

    async def close_async(self) -> None:
        for client in self._owned():
            await client.aclose()


_SCORE = re.compile(r"-?\d+(?:\.\d+)?")


def parse_score(text: str) -> float:
    """The critic's 0–10 score from its JSON answer (or the first number in it); 0 when there is none."""
    try:
        data = json_object(text)
        value = float(data["score"]) if isinstance(data, dict) else float(data)
    except (ValueError, KeyError, TypeError):
        match = _SCORE.search(text)
        value = float(match.group()) if match else 0.0
    return 0.0 if math.isnan(value) else max(0.0, min(10.0, value))


class BestOfNUser(LLMUser):
    """APIGen-MT's user: N candidate messages, a critic model scores each 0–10, the best is sent.

    The critic answers :class:`CriticAnswer` JSON (asked for as a ``json_schema`` response format); an
    answer cut at ``critic_max_tokens`` scores 0. ``owns_client``: :meth:`close` closes both clients.
    """

    name = "llm-best-of-n"

    def __init__(
        self,
        client: LLMClient,
        critic: LLMClient | None = None,
        n: int = 4,
        max_tokens: int | None = None,
        critic_max_tokens: int | None = None,
        owns_client: bool = False,
    ):
        super().__init__(client, max_tokens, owns_client)
        if n < 1:
            raise ValueError("best-of-N needs N ≥ 1")
        self.critic = critic or client
        self.n = n
        self.critic_max_tokens = critic_max_tokens
        self.last_scores: list[float] = []

    def _owned(self) -> list[LLMClient]:
        return list({id(c): c for c in (self.client, self.critic)}.values()) if self.owns_client else []

    async def _reply(self) -> str:
        base = (
            0 if self._seed is None else self._seed
        )  # distinct seeds: distinct requests, distinct cache keys
        completions = await asyncio.gather(*(self._turn(base + i) for i in range(self.n)))
        candidates = [c.content.strip() for c in completions]
        if self.n == 1:
            return candidates[0]
        self.last_scores = list(await asyncio.gather(*(self._judge(c) for c in candidates)))
        return candidates[max(range(self.n), key=lambda i: (self.last_scores[i], -i))]

    async def _judge(self, candidate: str) -> float:
        transcript = "\n".join(
            f"{'Agent' if m['role'] == 'user' else 'Customer'}: {m['content']}" for m in self._history
        )
        review = (
            f"Customer's situation:\n{self._situation}\n\nConversation so far:\n{transcript}\n\n"
            f"Candidate next message from the customer:\n{candidate}"
        )
        messages = [
            {"role": "system", "content": CRITIC_PROMPT.format(stop=STOP)},
            {"role": "user", "content": review},
        ]
        completion = await self.critic.complete(
            messages,
            role="critic",
            schema=CriticAnswer,
            max_tokens=self.critic_max_tokens,
            temperature=0.0,
        )
        self._count(completion)
        return 0.0 if completion.cut else parse_score(completion.content)
