"""Agent actions in every accepted form, normalised to one assistant turn.

An action may be a JSON tool call string, plain text for the user, a dict (a tool call or an OpenAI
assistant message) or an OpenAI message object. Parsing never fails: what cannot be understood
becomes a tool call carrying an error, which the env turns into an ``Error:`` observation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from apigen_gym.util import jsonio

_JSON_WS = " \t\n\r"
_WS = f"[{_JSON_WS}]*"  # JSON's whitespace
_USUAL_CALL = re.compile(
    rf'{_WS}\{{{_WS}"name"{_WS}:{_WS}"([^"\\\x00-\x1f]+)"{_WS},{_WS}"arguments"{_WS}:{_WS}'
)
"""The usual JSON call up to its arguments: ``{"name": "<a name without escapes>", "arguments": ``."""
_CLOSING = re.compile(rf"{_WS}\}}{_WS}\Z")


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    error: str | None = None
    """Why the call could not be understood; set instead of executing it."""
    arguments_json: str = ""
    """``arguments`` as the JSON string of an OpenAI tool call, for the transcript: the agent's own text
    when it sent the arguments as JSON text, else their serialisation (the check that they are JSON
    values); empty: not made."""


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
            sent = arguments
            try:
                arguments = jsonio.loads(sent) if sent.strip() else {}
            except json.JSONDecodeError as exc:
                return ToolCall(name, id=call_id, error=f"arguments of {name} are not valid JSON ({exc.msg})")
            except RecursionError:
                return ToolCall(name, id=call_id, error=f"arguments of {name} are nested too deeply")
            if type(arguments) is dict and type(sent) is str:  # the agent's own text is the transcript's
                return ToolCall(name, arguments, call_id, None, sent)
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
    usual = _usual_call(action)
    if usual is not None:
        return AgentTurn(None, (usual,))
    text = action.strip()
    if not text.startswith("{"):
        return AgentTurn(action)
    try:
        parsed = jsonio.loads(text)
    except json.JSONDecodeError as exc:
        return _malformed(f"invalid JSON ({exc.msg} at position {exc.pos})")
    except RecursionError:
        return _malformed("JSON nested too deeply")
    return _from_dict(parsed) if isinstance(parsed, dict) else _malformed("expected a JSON object")


def _usual_call(text: str) -> ToolCall | None:
    """The usual ``{"name": ..., "arguments": {...}}`` call read straight off the text, its arguments'
    text kept for the transcript (one parse, no serialisation); ``None``: read it the general way."""
    head = _USUAL_CALL.match(text)
    if head is None:
        return None
    start = head.end()
    closing = len(text.rstrip(_JSON_WS)) - 1  # the call's closing brace, if it ends as the usual one
    if closing - start >= jsonio.QUICK_FROM and text[closing] == "}":  # long arguments: orjson may read
        sent = text[start:closing]
        arguments = jsonio.read_quickly(sent)  # one JSON value with nothing after it, or not read
        if type(arguments) is dict:
            return ToolCall(head.group(1), arguments, None, None, sent.rstrip(_JSON_WS))
    try:
        arguments, end = jsonio.scan(text, start)
    except (StopIteration, json.JSONDecodeError, RecursionError):
        return None  # the general way says what is wrong
    if type(arguments) is not dict or (text[end:] != "}" and _CLOSING.match(text, end) is None):
        return None
    return ToolCall(head.group(1), arguments, None, None, text[start:end])
