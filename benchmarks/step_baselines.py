"""What a tool step is compared against: τ-bench itself, or a τ-bench-equivalent stand-in.

A τ-bench step, from the model's tool call to the transcript: the agent turns the call into an
``Action`` (``json.loads`` of the arguments), ``env.step(action)`` runs the tool on plain dicts,
mutating them in place, with no argument validation, and wraps the output in an ``EnvResponse``;
the agent appends the tool message. :class:`TauBench` runs τ-bench's own env (retail and airline, from
a checkout outside this repository); :class:`StandIn` does the same work with this project's tool
functions on plain dicts, for every domain: no validation, no copy-on-write, no trace, and each output
encoded by ``json.dumps``, as τ-bench's tools return theirs.

Both give each call's observation, so the benchmark can check that the calls compared are the same.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
import types
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from apigen_gym.core.database import Database
from apigen_gym.core.domain import Domain
from apigen_gym.core.task import Task

Record = dict[str, Any]
Touched = dict[tuple[str, str], Any]
"""Records a write changes, by (table, key), with the value to put back (``None``: absent)."""


class PlainState:
    """The part of the ``Fork`` API the tools use, over plain dicts changed in place (as τ-bench does).

    Look-ups use the base database's indexes, like the env's tools, plus the records added since.
    """

    def __init__(self, database: Database):
        self.base = database
        self.tables: dict[str, dict[str, Any]] = database.to_dict()
        self.added: dict[str, set[str]] = {}

    def get(self, table: str, key: str) -> Any:
        return self.tables[table].get(key)

    def write(self, table: str, key: str) -> Record:
        record = self.tables[table].get(key)
        if record is None:
            raise KeyError(f"{table}/{key}")
        return record  # type: ignore[no-any-return]

    def write_path(self, table: str, key: str, *path: str | int) -> Any:
        node: Any = self.write(table, key)
        for step in path:
            node = node[step]
        return node

    def insert(self, table: str, key: str, record: Record, *, handed_over: bool = False) -> Record:
        if key in self.tables[table]:
            raise KeyError(f"{table}/{key} already exists")
        self.tables[table][key] = record
        self.added.setdefault(table, set()).add(key)
        return record

    def delete(self, table: str, key: str) -> None:
        del self.tables[table][key]

    def items(self, table: str) -> Iterator[tuple[str, Any]]:
        return iter(self.tables[table].items())

    def keys(self, table: str) -> Iterator[str]:
        return iter(self.tables[table])

    def changed(self, table: str) -> Iterator[tuple[str, Any]]:
        rows = self.tables[table]
        return iter([(k, rows[k]) for k in sorted(self.added.get(table, ()))])

    def find(self, table: str, key_fn: Callable[[Any], Hashable], value: Hashable) -> list[str]:
        rows = self.tables[table]
        hits = [k for k in self.base.index(table, key_fn).get(value, ()) if k in rows]
        return hits + [k for k in sorted(self.added.get(table, ())) if key_fn(rows[k]) == value]

    def put_back(self, touched: Touched) -> None:
        """Set the ``touched`` records to the given values (deep copies), removing absent ones."""
        for (table, key), record in touched.items():
            if record is None:
                self.tables[table].pop(key, None)
                self.added.get(table, set()).discard(key)
            else:
                self.tables[table][key] = copy.deepcopy(record)


class _Action(BaseModel):
    name: str
    kwargs: dict[str, Any]


class _Info(BaseModel):
    task: Task
    source: str | None = None


class _Response(BaseModel):
    observation: str
    reward: float
    done: bool
    info: _Info


def encoding_as_tau_bench(fn: Callable[..., str]) -> Callable[..., str]:
    """``fn`` with its output encoded by ``json.dumps``, as τ-bench's tools encode theirs, in place of
    this project's ``dumps`` (an encoder built once, reusing the texts kept by the base's records)."""
    namespace = {**fn.__globals__, "dumps": json.dumps}
    same = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    same.__kwdefaults__ = fn.__kwdefaults__
    return same


class StandIn:
    """τ-bench's step, done with this project's tool functions on plain dicts (no validation), their
    outputs encoded by ``json.dumps`` as τ-bench's tools do."""

    label = "stand-in"

    def __init__(self, domain: Domain, database: Database, task: Task):
        self.functions = {t.name: encoding_as_tau_bench(t.fn) for t in domain.tools}
        self.database = database
        self.task = task
        self.state = PlainState(database)
        self.messages: list[dict[str, Any]] = []
        self.actions: list[_Action] = []

    def reset(self) -> None:
        self.state = PlainState(self.database)
        self.messages, self.actions = [], []

    def step(self, call: str) -> str:
        raw = json.loads(call)
        action = _Action(name=raw["name"], kwargs=raw["arguments"])
        self.actions.append(action)
        info = _Info(task=self.task)
        function = self.functions.get(action.name)
        if function is None:
            observation = f"Unknown action {action.name}"
        else:
            try:
                observation = function(self.state, **action.kwargs)
            except Exception as exc:  # noqa: BLE001 - as τ-bench's step
                observation = f"Error: {exc}"
        info.source = action.name
        response = _Response(observation=observation, reward=0.0, done=False, info=info)
        self.messages.append({"role": "tool", "name": action.name, "content": response.observation})
        return response.observation

    def record(self, table: str, key: str) -> Any:
        return self.state.get(table, key)

    def put_back(self, touched: Touched) -> None:
        self.state.put_back(touched)


def load_tau_bench(checkout: str | Path) -> Any:
    """τ-bench's package from a checkout (``tau_bench/`` inside it); ``None`` with a reason printed if not."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # its LLM layer fetches prices otherwise
    sys.path.insert(0, str(Path(checkout).resolve()))
    try:
        return importlib.import_module("tau_bench.envs.base")
    except ImportError as exc:
        print(f"τ-bench at {checkout} cannot be imported ({exc}); using the stand-in only")
        return None


class TauBench:
    """τ-bench's own env (``MockRetailDomainEnv`` / ``MockAirlineDomainEnv``) on its own data."""

    label = "τ-bench"
    ENVS = {
        "retail": ("tau_bench.envs.retail.env", "MockRetailDomainEnv"),
        "airline": ("tau_bench.envs.airline.env", "MockAirlineDomainEnv"),
    }

    def __init__(self, domain: str):
        module, name = self.ENVS[domain]
        env_class = getattr(importlib.import_module(module), name)
        self.env = env_class(user_strategy="human", task_index=0)
        self.action = importlib.import_module("tau_bench.types").Action
        self.messages: list[dict[str, Any]] = []

    def tables(self) -> dict[str, Any]:
        """τ-bench's database, a fresh copy."""
        return self.env.data_load_func()  # type: ignore[no-any-return]

    def tasks(self) -> list[Task]:
        """τ-bench's test tasks, as this project's tasks."""
        return [
            Task(
                id=str(i),
                user_id=t.user_id,
                instruction=t.instruction,
                actions=[{"name": a.name, "arguments": a.kwargs} for a in t.actions],
                outputs=t.outputs,
            )
            for i, t in enumerate(self.env.tasks)
        ]

    def reset(self) -> None:
        self.env.data = self.env.data_load_func()
        self.env.actions, self.messages = [], []

    def step(self, call: str) -> str:
        raw = json.loads(call)
        response = self.env.step(self.action(name=raw["name"], kwargs=raw["arguments"]))
        self.messages.append({"role": "tool", "name": raw["name"], "content": response.observation})
        return response.observation  # type: ignore[no-any-return]

    def record(self, table: str, key: str) -> Any:
        return self.env.data[table].get(key)

    def put_back(self, touched: Touched) -> None:
        for (table, key), record in touched.items():
            if record is None:
                self.env.data[table].pop(key, None)
            else:
                self.env.data[table][key] = copy.deepcopy(record)
