"""Export a run's verified dialogues as SFT data: OpenAI chat format or APIGen-MT-5k's ShareGPT format.

``drop_stop`` removes the ``###STOP###`` control message from the training text (a message left empty
is dropped); it is off by default, so the text is the episode as played. Either way the provenance
says why the dialogue ended (``termination``: ``user_stop``, ``agent_stop``, ``transfer``).

Every row carries its provenance in a ``provenance`` field with one fixed structure, so that the
Hugging Face ``datasets`` JSON loader infers a single schema. Arrow infers types block by block and
casts later blocks to the first one's types, so the provenance holds no value whose type can vary:
parts whose shape varies from task to task, or that may be empty (gold actions, outputs, parents,
state change, judge votes, feedback, context), are JSON strings; a missing text is ``""``, a missing
seed ``-1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from apigen_gym.core.user import STOP
from apigen_gym.generation.phase2 import DialogueRecord, read_records
from apigen_gym.generation.store import RunPaths
from apigen_gym.util.jsonio import atomic_writer

Format = Literal["openai", "sharegpt"]
FORMATS: tuple[Format, ...] = ("openai", "sharegpt")
NO_SEED = -1
"""A seed that was not set (an offline agent, a task without Phase 1 provenance)."""

PROVENANCE_ALIASES: dict[str, tuple[str, ...]] = {
    "source": ("source",),
    "proposer": ("proposer", "proposer_model"),
    "persona": ("persona",),
    "context": ("context", "context_summary"),
    "rounds": ("rounds", "feedback_rounds"),
    "feedback": ("feedback",),
    "votes": ("votes", "judge_votes"),
    "state_change": ("state_change",),
    "parents": ("parents",),
    "seed": ("seed",),
}
"""Phase 1 provenance keys read into fixed fields (first key present wins); the rest go to ``extra``."""


def _json(value: Any) -> str:
    """JSON text (``null`` for None): one string type whatever the value's shape."""
    return json.dumps(value, ensure_ascii=False)


def _text(value: Any) -> str:
    """A string as is, None as empty, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else _json(value)


def _int(value: Any, missing: int) -> int:
    """An integer, or ``missing`` when ``value`` is not one."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (float, str)):
        try:
            return int(value)
        except (ValueError, OverflowError):
            return missing
    return missing


def _pick(provenance: Mapping[str, Any], field: str) -> Any:
    return next((provenance[k] for k in PROVENANCE_ALIASES[field] if k in provenance), None)


def provenance_row(record: DialogueRecord) -> dict[str, Any]:
    """The record's provenance: the same keys and value types for every record, no nulls, no lists."""
    prov = record.provenance
    known = {k for aliases in PROVENANCE_ALIASES.values() for k in aliases}
    parents = _pick(prov, "parents")
    task = record.task
    return {
        "task_id": record.task_id,
        "attempt": record.attempt,
        "domain": record.env_id.split("/")[-1].removesuffix("-v0"),
        "instruction": task.instruction,
        "user_id": task.user_id or "",
        "gold_actions": _json([a.model_dump(mode="json") for a in task.actions]),
        "outputs": _json([str(o) for o in task.outputs]),
        "persona": _text(_pick(prov, "persona")),
        "state_change": _json(_pick(prov, "state_change")),
        "judge_votes": _json(_pick(prov, "votes")),
        "feedback": _json(_pick(prov, "feedback")),
        "feedback_rounds": _int(_pick(prov, "rounds"), 0),
        "source": _text(_pick(prov, "source") or task.meta.get("source")),
        "parents": _json([str(p) for p in parents] if isinstance(parents, list) else []),
        "proposer": _text(_pick(prov, "proposer")),
        "context": _text(_pick(prov, "context")),
        "models": {
            "agent": record.models.agent,
            "user": record.models.user,
            "user_best_of": record.models.user_best_of,
            "critic": record.models.critic or "",
        },
        "seeds": {
            "run": record.seeds.run,
            "episode": record.seeds.episode,
            "agent": NO_SEED if record.seeds.agent is None else record.seeds.agent,
            "phase1": _int(_pick(prov, "seed"), NO_SEED),
        },
        "termination": record.termination or "",
        "env_id": record.env_id,
        "env_version": record.env_version,
        "harness_version": record.harness_version,
        "reward": float(record.reward),
        "extra": _json({k: v for k, v in prov.items() if k not in known}),
    }


def without_stop(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with the ``###STOP###`` control message taken out of every text (a message left with
    neither text nor tool calls is dropped)."""
    out = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str) or STOP not in content:
            out.append(dict(message))
            continue
        text = " ".join(content.replace(STOP, " ").split())
        if text or message.get("tool_calls"):
            out.append({**message, "content": text})
    return out


def openai_row(record: DialogueRecord, drop_stop: bool = False) -> dict[str, Any]:
    """``{"messages", "tools", "provenance"}``: the conversation as an OpenAI chat fine-tuning row."""
    messages = without_stop(record.messages) if drop_stop else record.messages
    return {"messages": messages, "tools": record.tools, "provenance": provenance_row(record)}


def _arguments(raw: Any) -> Any:
    """Tool-call arguments as a JSON value (the text itself when it does not parse)."""
    if not isinstance(raw, str):
        return raw if raw is not None else {}
    try:
        return json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return raw


def sharegpt_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """OpenAI messages as ShareGPT turns: human, gpt, function_call (name and arguments), observation."""
    turns: list[dict[str, str]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        text = content if isinstance(content, str) else _text(content)
        if role == "user":
            turns.append({"from": "human", "value": text})
        elif role == "tool":
            turns.append({"from": "observation", "value": text})
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if text or not calls:
                turns.append({"from": "gpt", "value": text})
            for call in calls:
                fn = call.get("function") or {}
                value = {"name": fn.get("name", ""), "arguments": _arguments(fn.get("arguments"))}
                turns.append({"from": "function_call", "value": json.dumps(value, ensure_ascii=False)})
    return turns


def function_definitions(tools: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool schemas unwrapped to ``{"name", "description", "parameters"}`` definitions."""
    return [dict(t["function"]) if isinstance(t.get("function"), Mapping) else dict(t) for t in tools]


def sharegpt_row(record: DialogueRecord, drop_stop: bool = False) -> dict[str, Any]:
    """APIGen-MT-5k layout: ``conversations``, ``tools`` (JSON text), ``system`` (policy), ``provenance``."""
    system = next((m.get("content") for m in record.messages if m.get("role") == "system"), "")
    messages = without_stop(record.messages) if drop_stop else record.messages
    return {
        "conversations": sharegpt_turns(messages),
        "tools": json.dumps(function_definitions(record.tools), ensure_ascii=False),
        "system": _text(system),
        "provenance": provenance_row(record),
    }


def rows(records: Iterable[DialogueRecord], fmt: Format, drop_stop: bool = False) -> Iterator[dict[str, Any]]:
    """The export rows of ``records`` in ``fmt`` (``drop_stop``: without the control message)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    convert = openai_row if fmt == "openai" else sharegpt_row
    return (convert(r, drop_stop) for r in records)


def write_rows(path: str | os.PathLike[str], lines: Iterable[dict[str, Any]]) -> int:
    """Stream JSON rows to ``path`` atomically (all or nothing); returns how many were written."""
    count = 0
    with atomic_writer(path) as handle:
        for row in lines:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def export(
    run_dir: str | os.PathLike[str], fmt: Format, out_file: str | os.PathLike[str], drop_stop: bool = False
) -> int:
    """Write the run's verified dialogues (ordered by task and attempt) to ``out_file``; returns the count.

    ``drop_stop``: take the ``###STOP###`` control message out of the text (the provenance keeps why
    each dialogue ended)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    paths = RunPaths(Path(run_dir))
    if not paths.dialogues.is_file():
        raise FileNotFoundError(f"no verified dialogues in {run_dir}: {paths.dialogues} does not exist")
    records = sorted(read_records(paths.dialogues), key=lambda r: (r.task_id, r.attempt))
    return write_rows(out_file, rows((r for r in records if r.label == "success"), fmt, drop_stop))
