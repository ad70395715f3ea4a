"""Export of verified dialogues: OpenAI and ShareGPT rows, provenance, one schema, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apigen_gym.core.task import Task
from apigen_gym.core.user import STOP
from apigen_gym.domains.retail import DOMAIN
from apigen_gym.domains.retail.sampler import sample_tasks
from apigen_gym.generation import export as export_module
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.export import Format, export, sharegpt_turns, without_stop
from apigen_gym.generation.phase2 import read_records, run_phase2
from apigen_gym.generation.pipeline import GenerationError, export_main
from apigen_gym.generation.store import RunPaths
from apigen_gym.util.jsonio import read_jsonl, write_jsonl

N = 12
ROLES = {"human", "gpt", "function_call", "observation"}
PROVENANCE_KEYS = {
    "task_id",
    "attempt",
    "domain",
    "instruction",
    "user_id",
    "gold_actions",
    "outputs",
    "persona",
    "state_change",
    "judge_votes",
    "feedback",
    "feedback_rounds",
    "source",
    "parents",
    "proposer",
    "context",
    "models",
    "seeds",
    "termination",
    "env_id",
    "env_version",
    "harness_version",
    "reward",
    "extra",
}


def _provenance(task: Task, index: int) -> dict[str, Any]:
    """Provenance of varying shape from row to row, as Phase 1 may write it."""
    return {
        "source": "recombined" if index % 3 == 0 else "template",
        "proposer_model": None if index % 2 else "gpt-4o",
        "persona": "You are direct.",
        "context": {"user_id": task.user_id, "rows": {"orders": ["#W1"] * index}} if index % 2 else None,
        "rounds": 1 + index % 3,
        "feedback": ["format: bad"] * (index % 3),
        "votes": [{"judge": "j", "scores": {"correctness": True}}] if index % 2 else [],
        "state_change": {"orders": {"#W1": {"status": "cancelled"}}} if index % 2 else {"users": ["x", 1]},
        "parents": ["a", "b"] if index % 3 == 0 else [],
        "seed": index,
        "env_version": "1",
        "harness_version": "0.1.0",
        "something_new": [index],
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    tasks = sample_tasks(DOMAIN.database(), N, 21, "train")
    dressed = [
        t.model_copy(update={"meta": {**t.meta, "provenance": _provenance(t, i)}})
        for i, t in enumerate(tasks)
    ]
    paths = RunPaths(root)
    write_jsonl(paths.accepted, [t.model_dump(mode="json") for t in dressed])
    run_phase2(GenerationConfig(domain="retail", n=N, phase="2"), paths)
    return root


# --- a stand-in for the datasets JSON loader's schema inference ----------------------------------


def arrow_type(value: Any) -> Any:
    """The type Arrow's JSON reader would infer for one value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        element: Any = "null"
        for item in value:
            element = unify(element, arrow_type(item))
        return ("list", element)
    assert isinstance(value, dict)
    return ("struct", {k: arrow_type(v) for k, v in value.items()})


def unify(a: Any, b: Any) -> Any:
    """One type for both (null fits anything, int widens to float, structs merge); TypeError on conflict."""
    if a == "null":
        return b
    if b == "null" or a == b:
        return a
    if isinstance(a, str) and isinstance(b, str) and {a, b} == {"int", "float"}:
        return "float"
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "list":
        return ("list", unify(a[1], b[1]))
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "struct":
        keys = list(dict.fromkeys([*a[1], *b[1]]))
        return ("struct", {k: unify(a[1].get(k, "null"), b[1].get(k, "null")) for k in keys})
    raise TypeError(f"conflicting types {a!r} and {b!r}")


def check_loads_with_one_schema(path: Path) -> list[dict[str, Any]]:
    """The rows, after checking that ``datasets`` (or, without it, the stand-in) reads one schema."""
    rows = list(read_jsonl(path))
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        schema: Any = "null"
        for row in rows:
            assert set(row) == set(rows[0]), "every row has the same top-level keys"
            assert arrow_type(row["provenance"]) == arrow_type(rows[0]["provenance"]), "provenance varies"
            assert "null" not in str(arrow_type(row["provenance"])), "a null or empty list in provenance"
            schema = unify(schema, arrow_type(row))
    else:
        loaded = datasets.load_dataset("json", data_files=str(path), split="train")
        assert loaded.num_rows == len(rows)
    return rows


# --- tests --------------------------------------------------------------------------------------


def test_openai_rows(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "openai.jsonl"
    assert export(run_dir, "openai", out) == N
    rows = check_loads_with_one_schema(out)
    records = {r.task_id: r for r in read_records(RunPaths(run_dir).dialogues)}
    assert [r["provenance"]["task_id"] for r in rows] == sorted(records)
    for row in rows:
        assert set(row) == {"messages", "tools", "provenance"}
        record = records[row["provenance"]["task_id"]]
        assert row["messages"] == record.messages and row["tools"] == DOMAIN.tools.schemas
        assert row["messages"][0]["role"] == "system"
        for message in row["messages"]:
            for call in message.get("tool_calls") or []:
                assert isinstance(json.loads(call["function"]["arguments"]), dict)


def test_sharegpt_rows(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharegpt.jsonl"
    assert export(run_dir, "sharegpt", out) == N
    rows = check_loads_with_one_schema(out)
    records = {r.task_id: r for r in read_records(RunPaths(run_dir).dialogues)}
    for row in rows:
        assert set(row) == {"conversations", "tools", "system", "provenance"}
        assert row["system"] == DOMAIN.policy.text
        assert isinstance(row["tools"], str)
        tools = json.loads(row["tools"])
        assert [t["name"] for t in tools] == DOMAIN.tools.names
        assert all(set(t) >= {"name", "description", "parameters"} for t in tools)
        turns = row["conversations"]
        assert {t["from"] for t in turns} <= ROLES and turns[0]["from"] == "human"
        assert all(isinstance(t["value"], str) for t in turns)
        messages = records[row["provenance"]["task_id"]].messages
        calls = [c for m in messages for c in m.get("tool_calls") or []]
        made = [json.loads(t["value"]) for t in turns if t["from"] == "function_call"]
        assert made == [
            {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
            for c in calls
        ]
        outputs = [m["content"] for m in messages if m["role"] == "tool"]
        assert [t["value"] for t in turns if t["from"] == "observation"] == outputs
        spoken = [
            (m["role"], m["content"]) for m in messages if m["role"] in ("user", "assistant") and m["content"]
        ]
        said = [
            ("user" if t["from"] == "human" else "assistant", t["value"])
            for t in turns
            if t["from"] in ("human", "gpt")
        ]
        assert said == spoken
        for before, after in zip(turns, turns[1:]):  # every call is answered by its observation next
            if before["from"] == "function_call":
                assert after["from"] in ("observation", "function_call")


@pytest.mark.parametrize("fmt", ["openai", "sharegpt"])
def test_the_stop_control_message_is_kept_by_default_and_can_be_dropped(
    run_dir: Path, tmp_path: Path, fmt: Format
) -> None:
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    assert export(run_dir, fmt, kept) == export(run_dir, fmt, dropped, drop_stop=True) == N
    records = {r.task_id: r for r in read_records(RunPaths(run_dir).dialogues)}
    for with_stop, without in zip(read_jsonl(kept), check_loads_with_one_schema(dropped)):
        assert STOP in json.dumps(with_stop["messages" if fmt == "openai" else "conversations"])
        text = without["messages" if fmt == "openai" else "conversations"]
        assert STOP not in json.dumps(text)
        record = records[without["provenance"]["task_id"]]
        assert without["provenance"]["termination"] == record.termination == "user_stop"
        assert without["provenance"] == with_stop["provenance"]
    messages = [
        {"role": "user", "content": f"Thanks, bye! {STOP}"},
        {"role": "assistant", "content": STOP},
        {"role": "assistant", "content": f"  {STOP}", "tool_calls": [{"id": "c"}]},
    ]
    assert without_stop(messages) == [
        {"role": "user", "content": "Thanks, bye!"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]},
    ]


def test_sharegpt_keeps_consecutive_roles_and_mixed_turns() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "think", "arguments": '{"thought": "hm"}'}}
    call2 = {"id": "c2", "type": "function", "function": {"name": "calculate", "arguments": "{bad"}}
    messages = [
        {"role": "system", "content": "policy"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call, call2]},
        {"role": "tool", "tool_call_id": "c1", "name": "think", "content": ""},
        {"role": "tool", "tool_call_id": "c2", "name": "calculate", "content": "Error: bad"},
        {"role": "assistant", "content": "Done."},
        {"role": "assistant", "content": "Anything else?"},
    ]
    assert sharegpt_turns(messages) == [
        {"from": "human", "value": "hi"},
        {"from": "gpt", "value": "Let me check."},
        {"from": "function_call", "value": '{"name": "think", "arguments": {"thought": "hm"}}'},
        {"from": "function_call", "value": '{"name": "calculate", "arguments": "{bad"}'},
        {"from": "observation", "value": ""},
        {"from": "observation", "value": "Error: bad"},
        {"from": "gpt", "value": "Done."},
        {"from": "gpt", "value": "Anything else?"},
    ]


def test_provenance_has_one_structure(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharegpt.jsonl"
    export(run_dir, "sharegpt", out)
    rows = list(read_jsonl(out))
    accepted = {t.id: t for t in (Task.model_validate(r) for r in read_jsonl(RunPaths(run_dir).accepted))}
    for row in rows:
        prov = row["provenance"]
        assert set(prov) == PROVENANCE_KEYS
        task = accepted[prov["task_id"]]
        given = task.meta["provenance"]
        assert prov["instruction"] == task.instruction and json.loads(prov["outputs"]) == task.outputs
        assert json.loads(prov["gold_actions"]) == [a.model_dump() for a in task.actions]
        assert json.loads(prov["state_change"]) == given["state_change"]
        assert json.loads(prov["judge_votes"]) == given["votes"]
        assert json.loads(prov["feedback"]) == given["feedback"]
        assert prov["feedback_rounds"] == given["rounds"] and prov["persona"] == given["persona"]
        assert prov["proposer"] == (given["proposer_model"] or "")
        assert json.loads(prov["parents"]) == given["parents"] and prov["source"] == given["source"]
        assert prov["attempt"] == 1 and prov["reward"] == 1.0
        assert prov["models"] == {"agent": "oracle", "user": "scripted", "user_best_of": 1, "critic": ""}
        assert prov["seeds"]["phase1"] == given["seed"] and isinstance(prov["seeds"]["episode"], int)
        assert (prov["env_id"], prov["env_version"]) == ("apigen/retail-v0", DOMAIN.version)
        assert json.loads(prov["extra"]) == {
            "env_version": "1",
            "harness_version": "0.1.0",
            "something_new": given["something_new"],
        }
        assert prov["seeds"]["agent"] == prov["seeds"]["episode"]  # the oracle words things by it
        for key in (
            "state_change",
            "judge_votes",
            "feedback",
            "gold_actions",
            "outputs",
            "parents",
            "context",
        ):
            assert isinstance(prov[key], str)


def test_export_is_atomic(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "data.jsonl"
    out.write_text("old\n")

    def broken(record: Any, drop_stop: bool = False) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(export_module, "openai_row", broken)
    with pytest.raises(RuntimeError):
        export(run_dir, "openai", out)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]  # no temporary file left behind
    monkeypatch.undo()
    export(run_dir, "openai", out)
    assert len(out.read_text().splitlines()) == N


def test_export_main_and_bad_input(run_dir: Path, tmp_path: Path) -> None:
    line = export_main(run_dir, "sharegpt", tmp_path / "x.jsonl")
    assert line == f"exported {N} verified dialogues (sharegpt) to {tmp_path / 'x.jsonl'}"
    with pytest.raises(GenerationError, match="unknown export format"):
        export_main(run_dir, "alpaca", tmp_path / "y.jsonl")
    with pytest.raises(FileNotFoundError, match="no verified dialogues"):
        export(tmp_path / "empty", "openai", tmp_path / "z.jsonl")


def test_schema_stand_in_catches_conflicts() -> None:
    with pytest.raises(TypeError):
        unify(arrow_type({"a": [1]}), arrow_type({"a": "x"}))
    assert unify(arrow_type({"a": 1, "b": None}), arrow_type({"a": 2.5, "c": [1]})) == (
        "struct",
        {"a": "float", "b": "null", "c": ("list", "int")},
    )
