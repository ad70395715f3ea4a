"""Answers that must be JSON: the ``response_format`` a pydantic model asks for, and tolerant parsing.

A role that needs JSON (proposer, judges, critic, recombination) passes its pydantic model to
:meth:`~apigen_gym.llm.client.LLMClient.complete` as ``schema``: the request then carries a
``json_schema`` response format generated from the model, which servers that support it enforce
(OpenAI, vLLM, SGLang, llama.cpp). A server that refuses it is asked again without it (the prompt
still describes the JSON), and the answer is read by :func:`json_object`, which finds the object in a
code fence or in text around it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

SHORT_TEXT: dict[str, Any] = {"maxLength": 300}
"""A bound for free-text fields of a schema (``Field(json_schema_extra=SHORT_TEXT)``): a server that
enforces the schema stops a reason that would run on to ``max_tokens``; parsing does not enforce it."""
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class JsonSchema:
    """A JSON schema written for one request (narrower than its pydantic model's: a proposer's answer
    may only call the tools it was shown), under a name."""

    name: str
    schema: dict[str, Any]


Schema = type[BaseModel] | JsonSchema
"""What a JSON answer is asked to follow: a pydantic model's schema, or a schema of its own."""


def response_format(schema: Schema) -> dict[str, Any]:
    """The ``response_format`` asking for JSON that validates against ``schema``."""
    if isinstance(schema, JsonSchema):
        return {"type": "json_schema", "json_schema": {"name": schema.name, "schema": schema.schema}}
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
    }


def json_values(text: str) -> list[Any]:
    """Every JSON object or array that starts at a ``{`` or ``[`` of ``text``, outermost first, in order."""
    found: list[Any] = []
    position = 0
    while True:
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        found.append(value)
        position = end


def json_object(text: str) -> Any:
    """The JSON in an answer: the whole text, its fenced block, or the first object inside other text.

    Raises ValueError when there is none.
    """
    stripped = text.strip()
    fenced = _FENCE.search(text)
    for candidate in (stripped, fenced.group(1).strip() if fenced else ""):
        if candidate:
            try:
                return json.loads(candidate)
            except ValueError:
                pass
    objects = [value for value in json_values(text) if isinstance(value, dict)]
    if objects:
        return objects[0]
    raise ValueError("no JSON object found")
