"""Agent actions in every accepted form, normalised to one assistant turn.

An action may be a JSON tool call string, plain text for the user, a dict (a tool call or an OpenAI
assistant message) or an OpenAI message object. Parsing never fails: what cannot be understood
becomes a tool call carrying an error, which the env turns into an ``Error:`` observation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from apigen_gym.util import jsonio


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    error: str | None = None
    """Why the call could not be understood; set instead of executing it."""
    arguments_json: str = ""
    """``arguments`` as the JSON string of an OpenAI tool call, made once while parsing (it is the check
    that they are JSON values) and reused for the transcript; empty: not made."""


@dataclass(slots=True)
class AgentTurn:
    """One assistant message: text for the user, tool calls, or both."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()


def _malformed(reason: str) -> AgentTurn:
    return AgentTurn(None, (ToolCall(name="", error=f"malformed tool call: {reason}"),))


def _call_from(raw: Any) -> ToolCall:
    """A tool call from ``{"name", "arguments"}`` or OpenAI's ``{"id", "function": {...}}``."""
    if not isinstance(raw, dict):
        return ToolCall(name="", error="malformed tool call: expected an object")
    call_id = raw.get("id")
    if not isinstance(call_id, str):
        call_id = None
    function = raw.get("function")
    body: dict[str, Any] = function if isinstance(function, dict) else raw
    name = body.get("name")
    if not isinstance(name, str) or not name:
        return ToolCall(name="", id=call_id, error="malformed tool call: missing tool name")
    arguments = body.get("arguments")  # absent: no arguments
    if type(arguments) is not dict:
        if isinstance(arguments, str):
            try:
                arguments = jsonio.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return ToolCall(name, id=call_id, error=f"arguments of {name} are not valid JSON ({exc.msg})")
            except RecursionError:
                return ToolCall(name, id=call_id, error=f"arguments of {name} are nested too deeply")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return ToolCall(name, id=call_id, error=f"arguments of {name} must be a JSON object")
    try:
        text = jsonio.dumps(arguments)  # proves the arguments are JSON values, and is the transcript's copy
    except (TypeError, ValueError, RecursionError):
        return ToolCall(name, id=call_id, error=f"arguments of {name} must be JSON values")
    return ToolCall(name, arguments, call_id, None, text)


def _from_dict(action: dict[str, Any]) -> AgentTurn:
    if "tool_calls" in action or action.get("role") == "assistant":
        raw_calls = action.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            return _malformed("tool_calls must be a list")
        content = action.get("content")
        return AgentTurn(
            content if isinstance(content, str) else None, tuple(_call_from(c) for c in raw_calls)
        )
    if "name" in action or "function" in action:
        return AgentTurn(None, (_call_from(action),))
    if isinstance(action.get("content"), str):
        return AgentTurn(action["content"])
    return _malformed("expected a tool call or an assistant message")


def parse_action(action: Any) -> AgentTurn:
    """Normalise any action to an :class:`AgentTurn`; never raises."""
    if type(action) is not str:
        if hasattr(action, "model_dump") and not isinstance(action, dict):
            action = action.model_dump(exclude_none=True)
        if isinstance(action, dict):
            return _from_dict(action)
        if not isinstance(action, str):
            return _malformed(f"unsupported action type {type(action).__name__}")
    text = action.strip()
    if not text.startswith("{"):
        return AgentTurn(action)
    try:
        parsed = jsonio.loads(text)
    except json.JSONDecodeError as exc:
        return _malformed(f"invalid JSON ({exc.msg} at position {exc.pos})")
    except RecursionError:
        return _malformed("JSON nested too deeply")
    if type(parsed) is dict and len(parsed) == 2:  # the usual {"name": ..., "arguments": {...}}, directly
        name, arguments = parsed.get("name"), parsed.get("arguments")
        if type(name) is str and name and type(arguments) is dict:
            try:
                arguments_json = jsonio.dumps(arguments)  # the transcript's copy
            except RecursionError:
                pass  # the general path below says so
            else:
                return AgentTurn(None, (ToolCall(name, arguments, None, None, arguments_json),))
    return _from_dict(parsed) if isinstance(parsed, dict) else _malformed("expected a JSON object")
