"""Agents played by models: OpenAI function calling, and a ReAct-style text agent for models without it.

Both read the conversation from the env they were reset with (``env.messages``, ``env.tools``).

An answer the server could not read (a 500 saying the model's output does not parse, see
:mod:`apigen_gym.llm.client`) is the agent's own mistake, like a tool call with broken JSON: the turn
becomes a tool call without a name, which the env answers with an ``Error:`` observation, and the
episode goes on (counted as ``unreadable`` in the episode's ``llm_notes``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from apigen_gym.core.task import Task
from apigen_gym.llm.shapes import UNREADABLE, new_call_id
from apigen_gym.llm.types import Completion, LLMError, Usage
from apigen_gym.players.agent import Agent
from apigen_gym.util.aio import run_sync

if TYPE_CHECKING:
    from apigen_gym.core.env import ApigenEnv
    from apigen_gym.llm.client import LLMClient


class _ModelAgent(Agent):
    """Shared plumbing: the env of the episode, usage, cost and notes, a sync wrapper.

    ``max_tokens``: the cap of each answer (default: the client's setting, else the agent role's).
    ``notes`` counts what was unusual about this episode's answers (see :mod:`apigen_gym.llm.shapes`).
    """

    def __init__(self, client: LLMClient, max_tokens: int | None = None):
        self.client = client
        self.max_tokens = max_tokens
        self.env: ApigenEnv | None = None
        self.usage = Usage()
        self.cost = 0.0
        self.notes: Counter[str] = Counter()

    def reset(self, info: dict[str, Any], task: Task | None = None, env: ApigenEnv | None = None) -> None:
        if env is None:
            raise ValueError(f"the {self.name} agent reads the conversation from the env: pass env to reset")
        self.env = env
        self.usage, self.cost = Usage(), 0.0
        self.notes = Counter()

    def _count(self, completion: Completion) -> Completion:
        self.usage = self.usage + completion.usage
        self.cost += completion.cost
        self.notes.update(completion.notes)
        return completion

    async def _complete(self, messages: list[dict[str, Any]], **params: Any) -> Completion | None:
        """One answer, capped and counted; ``None`` when the server could not read the model's answer."""
        try:
            answer = await self.client.complete(messages, role="agent", max_tokens=self.max_tokens, **params)
        except LLMError as exc:
            if exc.kind != "model":
                raise
            self.notes[UNREADABLE] += 1
            return None
        return self._count(answer)

    def _env(self) -> ApigenEnv:
        if self.env is None:
            raise RuntimeError("reset the agent before acting")
        return self.env

    def act(self, observation: str) -> Any:
        return run_sync(self.act_async(observation))


def unreadable_turn() -> dict[str, Any]:
    """The action for an answer the server could not read: one tool call with no name (the env
    answers ``Error: malformed tool call: missing tool name``)."""
    call = {"id": new_call_id(), "type": "function", "function": {"name": "", "arguments": "{}"}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


class ToolCallingAgent(_ModelAgent):
    """One chat completion per turn with the env's tools; the assistant message is the action.

    Tool calls a server returns as text are recovered by the LLM layer and counted in ``notes``.
    ``seed``: sent with every request (default: the client's setting), so that episodes can differ.
    """

    name = "tool-calling"

    def __init__(self, client: LLMClient, max_tokens: int | None = None, seed: int | None = None):
        super().__init__(client, max_tokens)
        self.seed = seed

    async def act_async(self, observation: str) -> Any:
        env = self._env()
        completion = await self._complete(env.messages, tools=env.tools, seed=self.seed)
        return unreadable_turn() if completion is None else completion.message


REACT_FORMAT = """
# How to answer
You cannot call functions directly. Each turn, write one thought and one action, exactly like this:
Thought: <your reasoning, one or two sentences>
Action: {{"name": "<tool name>", "arguments": {{<arguments as JSON>}}}}

To write to the user, use the action "respond":
Action: {{"name": "respond", "arguments": {{"content": "<message>"}}}}
Tool results come back as "Observation: ...". The tools:
{tools}"""

RESPOND = "respond"
_ACTION = re.compile(r"Action:\s*(\{.*\})", re.DOTALL)


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """One line per tool: name, parameters and description, for a text-only prompt."""
    lines = []
    for schema in tools:
        fn = schema["function"]
        params = json.dumps(fn["parameters"].get("properties", {}))
        lines.append(f"- {fn['name']}: {fn.get('description', '')} Parameters: {params}")
    return "\n".join(lines)


def parse_react(text: str) -> Any:
    """The action in a ReAct answer: a tool call (JSON string), or a message to the user."""
    match = _ACTION.search(text)
    if match is None:
        return text.strip()
    try:
        action = json.loads(match.group(1))
    except json.JSONDecodeError:
        return match.group(1)  # a malformed call: the env reports the error to the agent
    if isinstance(action, dict) and action.get("name") == RESPOND:
        arguments = action.get("arguments") or {}
        return str(arguments.get("content", "")) if isinstance(arguments, dict) else str(arguments)
    return json.dumps(action)


def react_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The env's conversation rewritten for a model without function calling."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role, content = message["role"], message.get("content") or ""
        if role == "system":
            out.append(
                {"role": "system", "content": content + REACT_FORMAT.format(tools=describe_tools(tools))}
            )
        elif role == "tool":
            out.append({"role": "user", "content": f"Observation: {content}"})
        elif role == "assistant" and message.get("tool_calls"):
            for call in message["tool_calls"]:
                fn = call["function"]
                action = json.dumps({"name": fn["name"], "arguments": _loads(fn.get("arguments"))})
                out.append({"role": "assistant", "content": f"Action: {action}"})
        elif role == "assistant":
            action = json.dumps({"name": RESPOND, "arguments": {"content": content}})
            out.append({"role": "assistant", "content": f"Action: {action}"})
        else:
            out.append({"role": "user", "content": content})
    return out


def _loads(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments or {}
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments


class ReActAgent(_ModelAgent):
    """Thought/Action text in, one action out: for models served without function calling.

    An answer cut at ``max_tokens`` is not read for an action (its JSON would be partial): its text
    goes to the user as it is, and ``notes`` counts it.
    """

    name = "react"

    async def act_async(self, observation: str) -> Any:
        env = self._env()
        completion = await self._complete(react_messages(env.messages, env.tools))
        if completion is None:
            return unreadable_turn()
        return completion.content.strip() if completion.cut else parse_react(completion.content)
