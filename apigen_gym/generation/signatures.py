"""Tools as compact signatures for prompts: what a model needs to write a call, in a tenth of the JSON.

``cancel_pending_order(order_id: str, reason: "no longer needed"|"ordered by mistake") [write]``:
argument names, types (lists ``[T]``, objects ``{name: T}``), enums and constants, optional arguments
marked ``?`` with their default, then the tool's description; with ``notes``, one line per argument
with its own description (formats such as ``YYYY-MM-DD`` live there).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "null"}


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with a local ``$ref`` (``#/$defs/Name``) followed."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        return target if isinstance(target, Mapping) else {}
    return schema


def type_text(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> str:
    """A JSON schema as a short type: ``str``, ``"a"|"b"``, ``[{id: str, amount?: float}]``, ``int|null``."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    if "enum" in schema:
        return "|".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return "|".join(dict.fromkeys(type_text(s, root) for s in schema[key]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return "|".join(type_text({**schema, "type": k}, root) for k in kind)
    if kind == "array":
        items = schema.get("items")
        return f"[{type_text(items, root)}]" if isinstance(items, Mapping) else "list"
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties")
        if isinstance(properties, Mapping) and properties:
            required = set(schema.get("required") or ())
            fields = [
                f"{name}{'' if name in required else '?'}: {type_text(sub, root)}"
                for name, sub in properties.items()
            ]
            return "{" + ", ".join(fields) + "}"
        extra = schema.get("additionalProperties")
        return f"{{str: {type_text(extra, root)}}}" if isinstance(extra, Mapping) and extra else "dict"
    return SCALARS.get(str(kind), "any")


def signature(
    tool: Mapping[str, Any], kind: str | None = None, notes: bool = False, describe: bool = True
) -> str:
    """An OpenAI function schema (``{"type": "function", "function": {...}}`` or the inner object) as
    ``name(arg: T, opt?: T = default) [kind] description`` (without it unless ``describe``), with
    per-argument lines when ``notes``."""
    function = tool.get("function", tool)
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    required = set(parameters.get("required") or ())
    arguments = []
    lines = []
    for name, schema in properties.items():
        optional = name not in required
        text = f"{name}{'?' if optional else ''}: {type_text(schema, parameters)}"
        if optional and schema.get("default") is not None:
            text += f" = {json.dumps(schema['default'], ensure_ascii=False)}"
        arguments.append(text)
        described = str(_resolve(schema, parameters).get("description") or schema.get("description") or "")
        if notes and described:
            lines.append(f"    {name}: {described.strip()}")
    head = f"{function['name']}({', '.join(arguments)})"
    if kind:
        head += f" [{kind}]"
    description = str(function.get("description") or "").strip() if describe else ""
    return "\n".join([f"{head} {description}".rstrip(), *lines])
