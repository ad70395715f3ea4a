"""Agents played by models: OpenAI function calling, and a ReAct-style text agent for models without it.

Both read the conversation from the env they were reset with (``env.messages``, ``env.tools``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from apigen_gym.core.task import Task
from apigen_gym.llm.types import Completion, Usage
from apigen_gym.players.agent import Agent
from apigen_gym.util.aio import run_sync

if TYPE_CHECKING:
    from apigen_gym.core.env import ApigenEnv
    from apigen_gym.llm.client import LLMClient


class _ModelAgent(Agent):
    """Shared plumbing: the env of the episode, usage and cost, a sync wrapper."""

    def __init__(self, client: LLMClient):
        self.client = client
        self.env: ApigenEnv | None = None
        self.usage = Usage()
        self.cost = 0.0

    def reset(self, info: dict[str, Any], task: Task | None = None, env: ApigenEnv | None = None) -> None:
        if env is None:
            raise ValueError(f"the {self.name} agent reads the conversation from the env: pass env to reset")
        self.env = env
        self.usage, self.cost = Usage(), 0.0

    def _count(self, completion: Completion) -> Completion:
        self.usage = self.usage + completion.usage
        self.cost += completion.cost
        return completion

    def _env(self) -> ApigenEnv:
        if self.env is None:
            raise RuntimeError("reset the agent before acting")
        return self.env

    def act(self, observation: str) -> Any:
        return run_sync(self.act_async(observation))


class ToolCallingAgent(_ModelAgent):
    """One chat completion per turn with the env's tools; the assistant message is the action."""

    name = "tool-calling"

    async def act_async(self, observation: str) -> Any:
        env = self._env()
        completion = self._count(await self.client.complete(env.messages, tools=env.tools))
        return completion.message


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
    """Thought/Action text in, one action out: for models served without function calling."""

    name = "react"

    async def act_async(self, observation: str) -> Any:
        env = self._env()
        completion = self._count(await self.client.complete(react_messages(env.messages, env.tools)))
        return parse_react(completion.content)
