"""A domain: one world's tools, policy, tables, data and tasks, loaded from a τ-bench-layout folder.

Every domain folder (and any folder a user points ``data_dir`` at) has the τ-bench layout:
``db/<table>.json`` (one JSON object per table, keyed by id) and ``tasks/<split>.jsonl``.
Databases and task lists are loaded once per process and shared by every env.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apigen_gym.core.database import Database, gc_paused
from apigen_gym.core.policy import Policy
from apigen_gym.core.task import Task
from apigen_gym.core.tools import ToolSet
from apigen_gym.util import jsonio

if TYPE_CHECKING:
    from apigen_gym.core.apigraph import ApiGraph


class DataError(ValueError):
    """A data folder, split or task that cannot be loaded; the message says which and why."""


@dataclass(frozen=True)
class Domain:
    """Everything specific to one world; the library supplies the rest."""

    name: str
    tools: ToolSet
    policy: Policy
    tables: tuple[str, ...]
    home: Path = field(repr=False)
    """The domain's own folder, in τ-bench layout: its default data."""
    version: str = "0"
    api_graph: ApiGraph | None = field(default=None, repr=False)

    def resolve(self, data_dir: str | Path | None) -> Path:
        """The folder ``data_dir`` names (its local copy, in a worker it was shipped to)."""
        name = os.fspath(self.home if data_dir is None else data_dir)
        if data_dir is not None and (copy := _copies.get(os.fspath(Path(name)))) is not None:
            return copy
        return _resolved("" if os.path.isabs(name) else os.getcwd(), name)

    def database(self, data_dir: str | Path | None = None) -> Database:
        """The immutable base database of ``data_dir`` (default: the shipped one), cached."""
        folder = self.resolve(data_dir)
        database = _load_database(folder, self.tables)
        if database._loader is None and _registered(self):  # pickles as "that domain's data"
            database.loaded_by(_domain_database, self.name, None if data_dir is None else str(folder))
        return database

    def __reduce_ex__(self, protocol: Any) -> Any:
        """A registered domain pickles by name (its tools and rules are code, not data)."""
        if _registered(self):
            return (load_domain, (self.name,))
        return super().__reduce_ex__(protocol)

    def splits(self, data_dir: str | Path | None = None) -> list[str]:
        folder = self.resolve(data_dir) / "tasks"
        return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []

    def tasks(self, split: str = "test", data_dir: str | Path | None = None) -> list[Task]:
        """The tasks of ``split`` in ``data_dir`` (default: the shipped ones), cached."""
        return list(_load_tasks(self.resolve(data_dir), split))

    def task_index(self, split: str = "test", data_dir: str | Path | None = None) -> Mapping[str, int]:
        """Each task's position in :meth:`tasks`, by id (cached, shared by every env: not to be changed)."""
        return _index_tasks(self.resolve(data_dir), split)


_copies: dict[str, Path] = {}
"""Data folders read from a local copy in this process, by each name they go by."""


def read_data_from(folder: str | os.PathLike[str], copy: Path, *names: str | os.PathLike[str]) -> None:
    """In this process, read the data folder ``folder`` (also called ``names``, such as the relative path a
    user gave) from ``copy``: a worker on another machine gets the driver's data folder this way."""
    for name in (folder, *names):
        _copies[os.fspath(Path(name))] = copy.resolve()


@lru_cache(maxsize=256)
def _resolved(cwd: str, name: str) -> Path:
    """``name`` (relative to ``cwd``, if it is not absolute) as an absolute path without symlinks: a
    path syscall each part, once per process instead of once per env."""
    return (Path(cwd) / name).resolve()


@lru_cache(maxsize=16)
def _load_database(folder: Path, tables: tuple[str, ...]) -> Database:
    missing = [t for t in tables if not (folder / "db" / f"{t}.json").is_file()]
    if missing:
        raise DataError(f"{folder} is not a data folder: missing db/{missing[0]}.json")
    with gc_paused():
        tables_read = {t: jsonio.read_json(folder / "db" / f"{t}.json") for t in tables}
    return Database(tables_read, permanent=True)


@lru_cache(maxsize=64)
def _load_tasks(folder: Path, split: str) -> tuple[Task, ...]:
    path = folder / "tasks" / f"{split}.jsonl"
    if not path.is_file():
        available = sorted(p.stem for p in (folder / "tasks").glob("*.jsonl"))
        raise DataError(f"no split {split!r} in {folder} (available: {', '.join(available) or 'none'})")
    tasks = []
    for line_no, row in enumerate(jsonio.read_jsonl(path), 1):
        try:
            tasks.append(Task.model_validate(row))
        except ValueError as exc:
            raise DataError(f"{path}:{line_no}: not a task: {exc}") from exc
    return tuple(tasks)


@lru_cache(maxsize=64)
def _index_tasks(folder: Path, split: str) -> Mapping[str, int]:
    return {task.id: i for i, task in enumerate(_load_tasks(folder, split))}


def _registered(domain: Domain) -> bool:
    """Whether ``load_domain(domain.name)`` gives this very domain."""
    try:
        return load_domain(domain.name) is domain
    except DataError:
        return False


def _domain_database(name: str, data_dir: str | None) -> Database:
    return load_domain(name).database(data_dir)


DOMAIN_NAMES: tuple[str, ...] = ("retail", "airline", "travel")
"""The domains registered as Gymnasium envs (``apigen/<name>-v0``)."""


def load_domain(name: str) -> Domain:
    """The domain called ``name``: the ``DOMAIN`` of the module ``apigen_gym.domains.<name>``."""
    module_name = f"apigen_gym.domains.{name}"
    try:
        if not name.isidentifier():
            raise ModuleNotFoundError(name=module_name)
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise DataError(f"unknown domain {name!r} (known: {', '.join(DOMAIN_NAMES)})") from None
    domain: Domain = module.DOMAIN
    return domain
