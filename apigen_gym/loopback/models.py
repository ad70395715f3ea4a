"""Scripted models behind the loopback OpenAI-compatible server, chosen by a request's ``model`` field.

- ``oracle`` / ``oracle:<domain>``: plays a task's gold actions with a proper dialogue
  (:func:`apigen_gym.players.oracle.plan_oracle_moves`); the task is found from the user's opening message.
- ``chatty``: never calls a tool; asks polite questions for a few turns, then says goodbye.
- ``scripted-user`` / ``scripted-user:<domain>``: the customer side for LLM-user tests; the task is
  found from its instruction in the system prompt and played like the scripted user
  (:class:`~apigen_gym.players.scripted_user.ScriptedUser`).
- ``critic``: ``{"score": N, "reason": ...}`` for best-of-N user critics.
- ``echo``: the last user message.
- ``json``: the first JSON object in the system prompt (the form a JSON role is asked to answer in):
  bare when the request asks for a ``response_format``, else inside a code fence with text around it,
  as models answer without one.

Everything here is plain Python over JSON-decoded dicts: no pydantic in the per-request path.
Header names are looked up in lower case (the server passes case-insensitive headers).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from apigen_gym.core.domain import DataError, Domain, load_domain
from apigen_gym.core.task import Action, Task
from apigen_gym.core.user import STOP
from apigen_gym.players.llm_users import evolution_line
from apigen_gym.players.oracle import Move, Report, Say, plan_oracle_moves, report_text
from apigen_gym.players.scripted_user import ScriptedUser, canonical_opening, replies_match
from apigen_gym.players.wording import Phrasing

MODEL_NAMES: tuple[str, ...] = ("oracle", "chatty", "scripted-user", "critic", "echo", "json")
"""The scripted models, by base name."""
MODEL_HELP: dict[str, str] = {
    "oracle": "the agent that plays a task's gold actions (the task found from the user's opening)",
    "chatty": "an agent that never calls a tool: a few polite questions, then goodbye",
    "scripted-user": "the customer for LLM-user runs (the task found from the instruction it is given)",
    "critic": 'a best-of-N critic answering {"score": N, "reason": ...}',
    "echo": "repeats the last user message",
    "json": "the first JSON object of the system prompt (for JSON roles: proposer, judges, critic)",
}
"""One line per scripted model, for ``serve-llm --help``."""

GOODBYE = f"Thank you for contacting us. Goodbye! {STOP}"
TASK_HEADER = "x-apigen-task"
SCORE_HEADER = "x-apigen-score"
SCORE_KEYWORD = re.compile(r"APIGEN_SCORE=(-?\d+)")
DEFAULT_SCORE = 10
CHATTY_QUESTIONS: tuple[str, ...] = (
    "Hello! Thanks for reaching out. Could you tell me a little more about your situation?",
    "I see. How has your day been going so far?",
    "That is good to hear. Have you shopped with us for a long time?",
)
CHATTY_GOODBYE = f"It was lovely chatting with you. Have a wonderful day! Goodbye. {STOP}"
_CALL_PREFIX = secrets.token_hex(4)
_CALL_NUMBERS = itertools.count()


class ModelError(Exception):
    """A request a scripted model cannot answer; the server turns it into an OpenAI-style error."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ToolCallOut:
    """One tool call of a reply; ``arguments`` is JSON text (broken on purpose for malformed faults)."""

    name: str
    arguments: str
    id: str = field(default_factory=lambda: new_call_id())


@dataclass(frozen=True)
class Reply:
    """What a scripted model answers: text, tool calls, or both."""

    content: str | None = None
    tool_calls: tuple[ToolCallOut, ...] = ()


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat-completion request a scripted model looks at."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None


def new_call_id() -> str:
    """A fresh, process-unique tool-call id."""
    return f"call_{_CALL_PREFIX}{next(_CALL_NUMBERS):08x}"


def text_of(content: Any) -> str:
    """A message's content as text (OpenAI content parts are joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def count_role(messages: Sequence[dict[str, Any]], role: str) -> int:
    """How many messages have ``role``."""
    return sum(1 for m in messages if m.get("role") == role)


def call_of(action: Action) -> ToolCallOut:
    """A gold action as a tool call with a fresh id and JSON arguments."""
    return ToolCallOut(action.name, json.dumps(action.arguments))


def opening_of(task: Task) -> str | None:
    """The scripted user's first message for ``task`` (None when it has nothing to ask)."""
    goal = task.effective_goal()
    return f"Hi! {goal.requests[0].text}" if goal.requests else None


def follows_script(task: Task, messages: Sequence[dict[str, Any]]) -> bool:
    """Whether every user message is what a :class:`ScriptedUser` playing ``task`` would have said
    (in any wording: a seeded user's differs, what it carries does not)."""
    user = ScriptedUser()
    pending: str | None = user.start(task)
    for message in messages:
        role = message.get("role")
        if role == "user":
            if pending is None or not replies_match(pending, user.gist, text_of(message.get("content"))):
                return False
            pending = None
        elif role == "assistant" and not message.get("tool_calls"):
            pending = user.respond(text_of(message.get("content")))
    return True


def as_told(task: Task, prompt: str) -> Task:
    """``task`` as a customer with this system ``prompt`` knows it: a request evolves only if the prompt
    says when and how (an LLM user cannot act on a twist it was not told about, nor can its stand-in)."""
    goal = task.effective_goal()
    if not goal.evolving:
        return task
    requests = [
        r if r.twist is None or evolution_line(r) in prompt else r.model_copy(update={"twist": None})
        for r in goal.requests
    ]
    return task.model_copy(update={"goal": goal.model_copy(update={"requests": requests})})


class TaskIndex:
    """A domain's tasks over one or more splits, indexed lazily by opening message, instruction and id."""

    def __init__(self, domain: Domain, data_dir: Path | None = None, splits: Sequence[str] | None = None):
        self.domain = domain
        self.data_dir = data_dir
        self._splits = list(splits) if splits else None
        self._openings: dict[str, list[Task]] | None = None
        self._tasks: list[tuple[str, Task]] = []
        self._by_system: dict[str, Task | None] = {}
        self._plans: dict[int, list[Move]] = {}

    @property
    def splits(self) -> list[str]:
        """The splits searched, in order of preference."""
        return self._splits if self._splits is not None else self.domain.splits(self.data_dir)

    def _build(self) -> dict[str, list[Task]]:
        if self._openings is None:
            try:
                loaded = [
                    (split, task) for split in self.splits for task in self.domain.tasks(split, self.data_dir)
                ]
            except DataError as exc:
                raise ModelError(
                    f"cannot load the tasks of {self.domain.name}: {exc}", 500, "data_error"
                ) from None
            openings: dict[str, list[Task]] = {}
            for _, task in loaded:
                opening = opening_of(task)
                if opening is not None:
                    openings.setdefault(opening, []).append(task)
            self._tasks, self._openings = loaded, openings
        return self._openings

    def by_opening(self, opening: str) -> list[Task]:
        """The tasks whose scripted user opens with ``opening`` (in any of its greetings)."""
        return self._build().get(canonical_opening(opening), [])

    def by_id(self, key: str) -> Task | None:
        """The task ``<id>`` (first split that has it) or ``<split>:<id>``."""
        self._build()
        split, _, task_id = key.rpartition(":")
        for task_split, task in self._tasks:
            if task.id == task_id and split in ("", task_split):
                return task
        return None

    def by_instruction_in(self, text: str) -> Task | None:
        """The task whose instruction appears in ``text`` (the longest, when several do)."""
        if text not in self._by_system:
            self._build()
            found = [task for _, task in self._tasks if task.instruction and task.instruction in text]
            if len(self._by_system) >= 4096:
                self._by_system.clear()
            self._by_system[text] = max(found, key=lambda t: len(t.instruction)) if found else None
        return self._by_system[text]

    def plan(self, task: Task) -> list[Move]:
        """The oracle's moves for ``task``, computed once."""
        moves = self._plans.get(id(task))
        if moves is None:
            moves = self._plans[id(task)] = plan_oracle_moves(task, self.domain.tools)
        return moves

    def describe(self) -> str:
        """``retail (splits dev, test)`` for error messages."""
        return f"{self.domain.name} (splits {', '.join(self.splits) or 'none'})"


class ScriptedModel(ABC):
    """A model the server can answer with."""

    name: ClassVar[str]

    @abstractmethod
    def reply(self, request: ChatRequest) -> Reply:
        """The assistant message answering ``request``."""


class OracleModel(ScriptedModel):
    """The oracle agent: the n-th assistant turn of the conversation gets the n-th planned move."""

    name = "oracle"

    def __init__(self, index: TaskIndex):
        self.index = index

    def find_task(self, request: ChatRequest) -> Task:
        """The task of the conversation: by header, else by the user's opening, the user's later messages
        telling apart tasks that open alike."""
        key = request.headers.get(TASK_HEADER)
        if key:
            task = self.index.by_id(key)
            if task is None:
                raise ModelError(f"oracle: no task {key!r} in {self.index.describe()}")
            return task
        first = next((m for m in request.messages if m.get("role") == "user"), None)
        if first is None:
            raise ModelError("oracle: the conversation has no user message to identify the task")
        opening = text_of(first.get("content"))
        candidates = self.index.by_opening(opening)
        if not candidates:
            raise ModelError(f"oracle: no task of {self.index.describe()} opens with {opening[:80]!r}")
        if len(candidates) > 1:
            start = request.messages.index(first)
            consistent = [t for t in candidates if follows_script(t, request.messages[start:])]
            candidates = consistent or candidates
        # Tasks the conversation cannot tell apart yet share their script up to here (the oracle answers
        # each request when it is asked); where they part, the one that ends first is played: its last
        # report says every output it needs, and a user with more to ask then tells the tasks apart.
        return min(candidates, key=lambda task: len(self.index.plan(task)))

    def reply(self, request: ChatRequest) -> Reply:
        task = self.find_task(request)
        moves = self.index.plan(task)
        turn = count_role(request.messages, "assistant")
        if turn >= len(moves):
            return Reply(GOODBYE)
        move = moves[turn]
        if isinstance(move, Report):
            seen = [text_of(m.get("content")) for m in request.messages if m.get("role") == "tool"]
            said = [text_of(m.get("content")) for m in request.messages if m.get("role") == "assistant"]
            return Reply(report_text(move, task.outputs, seen, said, Phrasing()))
        return Reply(move.text) if isinstance(move, Say) else Reply(None, (call_of(move),))


class ChattyModel(ScriptedModel):
    """An agent that never calls a tool: a few polite questions, then goodbye."""

    name = "chatty"

    def reply(self, request: ChatRequest) -> Reply:
        turn = count_role(request.messages, "assistant")
        return Reply(CHATTY_QUESTIONS[turn] if turn < len(CHATTY_QUESTIONS) else CHATTY_GOODBYE)


class ScriptedUserModel(ScriptedModel):
    """The customer: roles flipped (the agent speaks as ``user``), answered like a ScriptedUser."""

    name = "scripted-user"

    def __init__(self, index: TaskIndex):
        self.index = index

    def reply(self, request: ChatRequest) -> Reply:
        system = next((m for m in request.messages if m.get("role") in ("system", "developer")), None)
        if system is None:
            raise ModelError("scripted-user: no system prompt with the task's instruction")
        prompt = text_of(system.get("content"))
        task = self.index.by_instruction_in(prompt)
        if task is None:
            raise ModelError(f"scripted-user: no instruction of {self.index.describe()} in the system prompt")
        user = ScriptedUser()
        answer = user.start(as_told(task, prompt))
        spoke = False
        for message in request.messages:
            if message.get("role") == "assistant":
                spoke = True
            elif message.get("role") == "user" and spoke:
                answer = user.respond(text_of(message.get("content")))
        return Reply(answer)


class CriticModel(ScriptedModel):
    """A critic: ``{"score": N, "reason": ...}``; N from a header, an ``APIGEN_SCORE=N`` keyword, or 10."""

    name = "critic"

    def reply(self, request: ChatRequest) -> Reply:
        score = self.score(request)
        return Reply(json.dumps({"score": score, "reason": f"Scripted critic: score {score}."}))

    @staticmethod
    def score(request: ChatRequest) -> int:
        """The score asked for (the latest keyword wins), or the default."""
        header = request.headers.get(SCORE_HEADER)
        if header:
            try:
                return int(header)
            except ValueError:
                raise ModelError(f"critic: {SCORE_HEADER} must be an integer, not {header!r}") from None
        for message in reversed(request.messages):
            found = SCORE_KEYWORD.findall(text_of(message.get("content")))
            if found:
                return int(found[-1])
        return DEFAULT_SCORE


class EchoModel(ScriptedModel):
    """Answers with the last user message's content."""

    name = "echo"

    def reply(self, request: ChatRequest) -> Reply:
        last = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
        return Reply(text_of(last.get("content")) if last is not None else "")


class JsonModel(ScriptedModel):
    """Answers with the first JSON object of the system prompt: bare under a ``response_format``, else
    fenced in prose."""

    name = "json"

    def reply(self, request: ChatRequest) -> Reply:
        system = next((m for m in request.messages if m.get("role") in ("system", "developer")), None)
        text = text_of(system.get("content")) if system is not None else ""
        decoder = json.JSONDecoder()
        for start in (i for i, char in enumerate(text) if char == "{"):
            try:
                value, _ = decoder.raw_decode(text, start)
            except ValueError:
                continue
            answer = json.dumps(value)
            if request.response_format is None:
                answer = f"Sure, here is my answer:\n```json\n{answer}\n```\nLet me know if you need more."
            return Reply(answer)
        raise ModelError("json: no JSON object in the system prompt to answer with")


class ModelRegistry:
    """Resolves ``model`` names (``oracle``, ``oracle:retail``, ``echo``, ...) to scripted models."""

    WITH_DOMAIN: ClassVar[tuple[str, ...]] = ("oracle", "scripted-user")

    def __init__(
        self,
        enabled: Sequence[str] = MODEL_NAMES,
        oracle_domain: str = "retail",
        oracle_data_dir: Path | None = None,
        oracle_splits: Sequence[str] | None = None,
    ):
        unknown = [name for name in enabled if name not in MODEL_NAMES]
        if unknown:
            raise ValueError(f"unknown scripted model {unknown[0]!r} (known: {', '.join(MODEL_NAMES)})")
        self.enabled = tuple(enabled)
        self.oracle_domain = oracle_domain
        self.oracle_data_dir = oracle_data_dir
        self.oracle_splits = list(oracle_splits) if oracle_splits else None
        self._models: dict[str, ScriptedModel] = {}
        self._indexes: dict[str, TaskIndex] = {}

    def resolve(self, name: str) -> ScriptedModel:
        """The model called ``name``; :class:`ModelError` (404) when it is unknown or disabled."""
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = self._make(name)
        return model

    def _make(self, name: str) -> ScriptedModel:
        base, _, domain = name.partition(":")
        if base not in self.enabled or (domain and base not in self.WITH_DOMAIN):
            raise ModelError(
                f"The model {name!r} does not exist (served: {', '.join(self.enabled)})",
                404,
                "model_not_found",
            )
        if base in self.WITH_DOMAIN:
            index = self.index(domain or self.oracle_domain)
            return OracleModel(index) if base == "oracle" else ScriptedUserModel(index)
        simple: dict[str, type[ScriptedModel]] = {
            "chatty": ChattyModel,
            "critic": CriticModel,
            "echo": EchoModel,
            "json": JsonModel,
        }
        return simple[base]()

    def index(self, domain_name: str) -> TaskIndex:
        """The task index of ``domain_name`` (shared by the oracle and the scripted user)."""
        index = self._indexes.get(domain_name)
        if index is None:
            try:
                domain = load_domain(domain_name)
            except DataError as exc:
                raise ModelError(str(exc), 404, "model_not_found") from None
            own = domain_name == self.oracle_domain
            data_dir = self.oracle_data_dir if own else None
            index = self._indexes[domain_name] = TaskIndex(
                domain, data_dir, self.oracle_splits if own else None
            )
        return index
