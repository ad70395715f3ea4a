"""Typed tools: a plain Python function over a :class:`Fork` becomes an agent-callable API.

The function's signature gives the pydantic model that validates arguments and the OpenAI function
schema; its docstring gives the descriptions. A tool returns a string and never raises to the agent:
validation failures, :class:`ToolError` and unexpected exceptions all become ``"Error: ..."``.

Arguments are strict: unknown keys are refused, at the top level and inside nested objects. A nested
object typed :data:`AsSent` is τ-bench's kind instead: its declared keys are validated, and the tool
receives the object as the agent sent it, undeclared keys kept, in the agent's key order.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import re
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

import pydantic
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, SchemaValidator, core_schema

from apigen_gym.core.database import Fork, json_text

ERROR_PREFIX = "Error: "


dumps = json_text
"""A tool's JSON output, exactly ``json.dumps(obj)`` like τ-bench's tools (default separators, keys in
insertion order) for the JSON values tools return. A base record, or any read-only part of the base,
is serialised once and its text reused; anything else (a changed or new record) is written by ujson
wherever that gives json.dumps' very text, about twice as quick."""


class ToolKind(str, Enum):
    """What a tool does to the world: reads it, writes it, or ends the conversation."""

    READ = "read"
    WRITE = "write"
    TERMINAL = "terminal"


_WRITE = ToolKind.WRITE
"""Read once: reading an enum member off its class costs a tenth of a small tool's call, each time."""


class ToolError(Exception):
    """Raised inside a tool to return ``"Error: <message>"`` to the agent."""


@dataclass(slots=True)
class ToolResult:
    """One executed call: the observation string and whether it was an error."""

    name: str
    arguments: dict[str, Any]
    output: str

    @property
    def ok(self) -> bool:
        return not self.output.startswith(ERROR_PREFIX)


def _docstring_parts(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into the one-paragraph summary and the ``Args:`` entries."""
    summary, _, rest = inspect.cleandoc(doc or "").partition("\nArgs:")
    params: dict[str, str] = {}
    indent: int | None = None
    current: str | None = None
    for line in rest.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            break  # the next section (Returns:, ...)
        entry = re.match(r"(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line.strip())
        if depth == indent and entry:
            current = entry.group(1)
            params[current] = entry.group(2)
        elif current is not None:
            params[current] = f"{params[current]} {line.strip()}"
    return " ".join(summary.split()), params


def _inline(schema: dict[str, Any]) -> Any:
    """The schema with every ``$ref`` replaced by its definition, without titles or ``additionalProperties``.

    OpenAI function schemas (and τ-bench's) spell nested objects out in place; whether extra keys are
    accepted is validation's business (see :data:`AsSent`).
    """
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {
                k: resolve(v) for k, v in node.items() if k not in ("title", "$defs", "additionalProperties")
            }
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


class Number(float):
    """A JSON number argument that stays an int when it is one (250 is echoed as 250, not 250.0)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        strict = [core_schema.int_schema(strict=True), core_schema.float_schema(strict=True)]
        return core_schema.union_schema(strict)  # type: ignore[arg-type]

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "number"}


class _KeptAsSent:
    """Validates a TypedDict's declared keys (of each item, for a list of them), then gives back the
    objects as sent (see :data:`AsSent`)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        many = get_origin(source) is list
        item = get_args(source)[0] if many else source
        declared = frozenset(item.__required_keys__ | item.__optional_keys__)
        schema = handler(source)  # the TypedDict's own checks: undeclared keys refused
        typed = handler.resolve_ref_schema(schema["items_schema"] if many else schema)
        if typed["type"] != "typed-dict":
            raise TypeError(f"AsSent needs a TypedDict or a list of them, not {source!r}")
        in_order = tuple(typed["fields"])

        def declared_only(sent: Any) -> Any:
            return {k: v for k, v in sent.items() if k in declared} if isinstance(sent, Mapping) else sent

        def as_sent(sent: Mapping[str, Any], checked: dict[str, Any]) -> dict[str, Any]:
            return {
                k: checked[k] if k in declared else v if type(v) in _ATOMS else copy.deepcopy(v)
                for k, v in sent.items()
            }

        def keep(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> Any:
            return as_sent(value, validate(declared_only(value)))  # (not a mapping: validate raised)

        def keep_each(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> Any:
            if not isinstance(value, (list, tuple, Iterator)):
                return validate(value)  # not a list: its own error
            sent = list(value)
            checked = validate([declared_only(item) for item in sent])
            return [as_sent(item, got) for item, got in zip(sent, checked)]

        chosen = keep_each if many else keep
        _DECLARED_ORDER[chosen] = (in_order, many)
        return core_schema.no_info_wrap_validator_function(chosen, schema)


_DECLARED_ORDER: weakref.WeakKeyDictionary[Callable[..., Any], tuple[tuple[str, ...], bool]] = (
    weakref.WeakKeyDictionary()
)
"""The validators of :data:`AsSent` arguments, with their TypedDict's keys in declared order and
whether the argument is a list of them."""


_ATOMS = frozenset({str, int, float, bool, type(None)})
"""Values that are never copied."""


def _as_declared(sent: Any, keys: tuple[str, ...], many: bool) -> bool:
    """Whether ``sent`` (an :data:`AsSent` argument) is plain dicts with exactly ``keys``, in that order:
    then its validated value is already the object as sent."""
    if not many:
        return type(sent) is dict and tuple(sent) == keys
    if type(sent) is not list:
        return False
    for item in sent:  # noqa: SIM110 - a loop: quicker than all() over a generator, on every call
        if type(item) is not dict or tuple(item) != keys:
            return False
    return True


def _unwrapped(fields_schema: Any) -> tuple[Any, dict[str, tuple[tuple[str, ...], bool]]]:
    """The model-fields schema with each :data:`AsSent` argument's own TypedDict checks in place of its
    validator, and those arguments' declared keys."""
    fields = dict(fields_schema["fields"])
    orders = {}
    for name, spec in fields.items():
        inner = spec["schema"]
        if inner["type"] != "function-wrap":
            continue
        order = _DECLARED_ORDER.get(inner["function"]["function"])
        if order is not None:
            fields[name] = {**spec, "schema": inner["schema"]}
            orders[name] = order
    return {**fields_schema, "fields": fields}, orders


def _as_sent_first(
    plain: Callable[[dict[str, Any]], Any],
    full: Callable[[dict[str, Any]], Any],
    orders: dict[str, tuple[tuple[str, ...], bool]],
) -> Callable[[dict[str, Any]], Any]:
    """Validation that tries ``plain`` (undeclared keys refused) and keeps its result when every
    :data:`AsSent` argument came with its declared keys in order; otherwise ``full``, which restores
    the agent's objects (and raises the same errors)."""

    def validate(arguments: dict[str, Any]) -> Any:
        try:
            result = plain(arguments)
        except pydantic.ValidationError:
            return full(arguments)
        for name, (keys, many) in orders.items():
            if name in arguments and not _as_declared(arguments[name], keys, many):
                return full(arguments)
        return result

    return validate


_T = TypeVar("_T")
AsSent = Annotated[_T, _KeptAsSent()]
"""A nested object argument as τ-bench takes it: ``AsSent[Passenger]`` (or ``AsSent[list[Passenger]]``)
validates the TypedDict's keys (present, of their types) and passes the agent's object on with its
other keys, in the agent's order. A plain TypedDict refuses keys it does not declare."""


@dataclass(frozen=True)
class Tool:
    """An agent-callable function with validated arguments and an OpenAI schema."""

    name: str
    kind: ToolKind
    fn: Callable[..., str]
    description: str
    arguments: type[pydantic.BaseModel]
    schema: dict[str, Any] = field(repr=False)

    @classmethod
    def from_function(cls, fn: Callable[..., str], kind: ToolKind, name: str | None = None) -> Tool:
        """Build a tool from ``fn(db, **arguments) -> str``; the first parameter receives the fork."""
        hints = get_type_hints(fn, include_extras=True)
        summary, param_docs = _docstring_parts(fn.__doc__ or "")
        fields: dict[str, Any] = {}
        for param in list(inspect.signature(fn).parameters.values())[1:]:
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (
                hints[param.name],
                pydantic.Field(default, description=param_docs.get(param.name)),
            )
        tool_name = name or fn.__name__
        model = pydantic.create_model(  # type: ignore[call-overload]
            f"{tool_name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        params = _inline(model.model_json_schema())
        parameters = {
            "type": "object",
            "properties": params.get("properties", {}),
            "required": params.get("required", []),
        }
        schema = {
            "type": "function",
            "function": {"name": tool_name, "description": summary, "parameters": parameters},
        }
        return cls(tool_name, kind, fn, summary, model, schema)

    @cached_property
    def validate_fields(self) -> Callable[[dict[str, Any]], tuple[dict[str, Any], Any, Any]]:
        """The arguments model's field validation, compiled once: ``(fields, extra, fields set)``.

        It applies the model's own field schemas and config (so the same checks and error messages)
        without building a model instance; a model with model-level validators is validated whole.
        """
        schema = self.arguments.__pydantic_core_schema__
        if schema["type"] == "model" and schema["schema"]["type"] == "model-fields":
            config = schema.get("config")
            full = SchemaValidator(schema["schema"], config).validate_python
            plain, orders = _unwrapped(schema["schema"])
            if not orders:
                return full  # type: ignore[no-any-return]
            return _as_sent_first(SchemaValidator(plain, config).validate_python, full, orders)
        validate = self.arguments.__pydantic_validator__.validate_python
        return lambda arguments: (validate(arguments).__dict__, None, None)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickles as the module attribute a ``@tool`` is (its function's name is taken by the tool),
        else as the call that builds it (its argument model is made at run time)."""
        module = sys.modules.get(self.fn.__module__)
        if getattr(module, self.fn.__qualname__, None) is self:
            return (_module_attribute, (self.fn.__module__, self.fn.__qualname__))
        return (Tool.from_function, (self.fn, self.kind, self.name))

    def __call__(self, db: Fork, arguments: Mapping[str, Any] | None = None) -> str:
        """Validate ``arguments`` and run the tool; every failure is an ``Error:`` string."""
        if arguments is None:
            arguments = {}
        elif type(arguments) is not dict:
            if not isinstance(arguments, Mapping):
                return f"{ERROR_PREFIX}arguments of {self.name} must be a JSON object"
            arguments = dict(arguments)
        try:
            fields = self.validate_fields(arguments)[0]
        except pydantic.ValidationError as exc:
            return f"{ERROR_PREFIX}invalid arguments for {self.name}: {_summarise(exc)}"
        try:
            return self.fn(db, **fields)
        except ToolError as exc:
            return f"{ERROR_PREFIX}{exc}"
        except Exception as exc:  # noqa: BLE001 - a tool bug must not crash the episode
            return f"{ERROR_PREFIX}{exc}"

    def apply(self, db: Fork, arguments: Mapping[str, Any] | None) -> str:
        """:meth:`__call__`, and a write that fails leaves no partial change."""
        if self.kind is not _WRITE:
            return self(db, arguments)
        before = db.snapshot()
        output = self(db, arguments)
        if output.startswith(ERROR_PREFIX):
            db.restore(before)
        return output


def own_arguments(arguments: object) -> tuple[dict[str, Any], Any]:
    """The arguments as the trace keeps them (a copy; ``{}`` if not an object) and as the tool gets them."""
    if type(arguments) is dict or isinstance(arguments, Mapping):
        copy = dict(arguments)
        return copy, copy
    return {}, arguments


def unknown_tool(name: object) -> str:
    return f"{ERROR_PREFIX}unknown tool {name!r}"


def _module_attribute(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _summarise(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg'].lower()}")
    return "; ".join(parts)


def tool(kind: ToolKind = ToolKind.READ, name: str | None = None) -> Callable[[Callable[..., str]], Tool]:
    """Decorator: turn ``fn(db, ...) -> str`` into a :class:`Tool`."""

    def wrap(fn: Callable[..., str]) -> Tool:
        return Tool.from_function(fn, kind, name)

    return wrap


class ToolSet:
    """A domain's tools by name, with their schemas and a safe dispatcher."""

    def __init__(self, tools: Iterable[Tool]):
        self._tools = {t.name: t for t in tools}
        self.schemas: list[dict[str, Any]] = [t.schema for t in self._tools.values()]

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def of_kind(self, kind: ToolKind) -> list[Tool]:
        return [t for t in self._tools.values() if t.kind is kind]

    def execute(self, db: Fork, name: str, arguments: Mapping[str, Any] | None) -> ToolResult:
        """Run one call; unknown tools and bad arguments give error results, never exceptions."""
        found = self._tools.get(name) if isinstance(name, str) else None
        args, given = own_arguments(arguments)
        if found is None:
            return ToolResult(str(name), args, unknown_tool(name))
        return ToolResult(name, args, found.apply(db, given))
