"""Assistant messages as real servers send them, brought to the shape an OpenAI chat request accepts back.

What differs between servers, and what is done about it:

- ``content: ""`` beside tool calls (llama.cpp, vLLM): kept as ``None``, like OpenAI.
- tool-call ids without OpenAI's ``call_`` prefix: kept as they are (the server matches them); a
  missing or repeated id is replaced by a fresh one.
- ``arguments`` sent as a JSON object instead of a string: serialised. Arguments that are not valid
  JSON are kept as text: the env answers them with an ``Error:`` observation.
- tool calls written as text by servers without a tool-call parser: ``<tool_call>{...}</tool_call>``
  blocks, or a bare JSON object (or list of them) naming one of the request's tools, are recovered
  as tool calls and noted (``text-tool-calls``).
- ``finish_reason: "length"``: the answer was cut at ``max_tokens``. It is kept as it is, noted
  (``cut``), and no tool call is recovered from its text.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection
from typing import Any

from apigen_gym.llm.structured import json_values

CUT = "cut"
TEXT_TOOL_CALLS = "text-tool-calls"
ARGUMENTS_OBJECT = "arguments-object"
MISSING_ID = "missing-id"
UNREADABLE = "unreadable"
"""The note of a try whose answer the server could not read (see :mod:`apigen_gym.llm.client`)."""
_TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's style."""
    return f"call_{secrets.token_hex(12)}"


def content_text(content: Any) -> str | None:
    """A message's content as text (content parts joined), or None."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _as_call(raw: Any, seen: set[str], notes: list[str]) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    function: dict[str, Any] = raw["function"] if isinstance(raw.get("function"), dict) else raw
    name = function.get("name")
    arguments = function.get("arguments", function.get("parameters"))
    if not isinstance(arguments, str):
        if arguments is not None:
            notes.append(ARGUMENTS_OBJECT)
        arguments = json.dumps(arguments if arguments is not None else {})
    call_id = raw.get("id")
    if not isinstance(call_id, str) or not call_id or call_id in seen:
        if raw is not function:
            notes.append(MISSING_ID)
        call_id = new_call_id()
    seen.add(call_id)
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name if isinstance(name, str) else "", "arguments": arguments},
    }


def _named(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("name"), str) and bool(value["name"])


def calls_in_text(text: str, tool_names: Collection[str]) -> tuple[list[dict[str, Any]], str]:
    """Tool calls written as text, and the text left around them (``([], text)`` when there are none).

    ``<tool_call>`` blocks are read whatever tool they name (the env reports an unknown one); a bare
    JSON object, or a list of them, only when the whole answer is that JSON and every name is one of
    ``tool_names``, so that JSON meant for the user stays text.
    """
    blocks = list(_TOOL_CALL_BLOCK.finditer(text))
    if blocks:
        calls = []
        for block in blocks:
            values = json_values(block.group(1))
            if not values or not _named(values[0]):
                return [], text
            calls.append(values[0])
        rest = _TOOL_CALL_BLOCK.sub("", text).strip()
        return calls, rest
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    if not stripped.startswith(("{", "[")):
        return [], text
    try:
        value = json.loads(stripped)
    except ValueError:
        return [], text
    items = value if isinstance(value, list) else [value]
    if items and all(_named(item) and item["name"] in tool_names for item in items):
        return items, ""
    return [], text


def normalize_message(
    message: dict[str, Any], tool_names: Collection[str] = (), finish_reason: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The assistant message in the shape a chat request accepts back, and notes of what was mended."""
    notes: list[str] = []
    content = content_text(message.get("content"))
    seen: set[str] = set()
    raw_calls = message.get("tool_calls")
    calls = [c for c in (_as_call(r, seen, notes) for r in raw_calls or []) if c is not None]
    if finish_reason == "length":
        notes.append(CUT)
    elif not calls and content and tool_names:
        found, rest = calls_in_text(content, tool_names)
        if found:
            recovered = [_as_call(c, seen, []) for c in found]
            calls = [c for c in recovered if c is not None]
            content = rest
            notes += [TEXT_TOOL_CALLS] * len(calls)
    clean: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        clean["content"] = content or None
        clean["tool_calls"] = calls
    return clean, notes
