"""Tables of JSON-like records: an immutable base and cheap copy-on-write forks.

A :class:`Database` freezes its records once, so that any number of episodes can share it. Each
episode works on a :class:`Fork`: reads fall through to the base, the first write to a record copies
that record into the fork's overlay. Reset is O(1), memory is O(records touched), and the diff
against the base only looks at the touched records.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import Any, NoReturn, TypeVar

import orjson

from apigen_gym.util import jsonio

Record = dict[str, Any]
Diff = dict[str, dict[str, Any]]
"""``{table: {key: record, or None where removed}}``: the format of τ-bench's ``final_diff``."""
KeyFn = Callable[[Any], Hashable]
"""Maps a record to the value it is looked up by (e.g. its lower-cased email)."""
_T = TypeVar("_T")


def _read_only(*_: Any, **__: Any) -> NoReturn:
    raise TypeError("base records are read-only: call Fork.write(table, key) to get a mutable copy")


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses mutation; still a ``dict`` for ``json`` and ``==``.

    It never changes, so its JSON text is made once, when first asked for.
    """

    __slots__ = ("_text",)
    _text: str
    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def json_text(self) -> str:
        """``json.dumps(self)``, made on the first call and kept."""
        try:
            return self._text
        except AttributeError:
            text = self._text = jsonio.dumps_quickly(self)
            return text


class FrozenList(list):  # type: ignore[type-arg]
    """A list that refuses mutation; still a ``list`` for ``json`` and ``==``.

    It never changes, so its JSON text is made once, when first asked for.
    """

    __slots__ = ("_text",)
    _text: str
    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = _read_only
    sort = reverse = __iadd__ = __imul__ = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    json_text = FrozenDict.json_text


class FrozenRecord(FrozenDict):
    """A record of a base table: a :class:`FrozenDict` that also makes mutable copies quickly."""

    __slots__ = ("_plain",)
    _plain: bool

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenRecord, (dict(self),))

    def mutable_copy(self) -> Record:
        """A deep mutable copy: parsed from the JSON text (in C) when that gives the very same values."""
        try:
            plain = self._plain
        except AttributeError:
            copy = thaw(self)
            self._plain = _plain_json(copy) and _parses_back(self.json_text(), copy)
            return copy  # type: ignore[no-any-return]
        return orjson.loads(self.json_text()) if plain else thaw(self)  # type: ignore[no-any-return]


_ATOMS = frozenset({str, int, float, bool, type(None)})
"""Leaf types, returned as they are without a call (most values of a record)."""
_FROZEN = frozenset({FrozenDict, FrozenList, FrozenRecord})
"""Read-only containers of a base, whose JSON texts are kept once made."""


def json_text(value: Any) -> str:
    """Exactly ``json.dumps(value)`` for a JSON value: a read-only part of the base gives its kept text,
    anything else is written whole, by ujson where it writes the same text
    (:func:`~apigen_gym.util.jsonio.dumps_quickly`).

    (Composing a copied record's text from its read-only parts' kept texts, as this once did, costs
    more in Python than ujson takes to write the whole record.)
    """
    if type(value) in _FROZEN:
        return value.json_text()  # type: ignore[no-any-return]
    return jsonio.dumps_quickly(value)


def freeze(value: Any) -> Any:
    """Deep read-only copy of a JSON-like value."""
    if isinstance(value, dict):
        return FrozenDict({k: v if type(v) in _ATOMS else freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList([v if type(v) in _ATOMS else freeze(v) for v in value])
    return value


def _freeze_record(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenRecord({k: v if type(v) in _ATOMS else freeze(v) for k, v in value.items()})
    return freeze(value)


_INT64 = 2**63


def _plain_json(value: Any) -> bool:
    """Whether ``value`` holds only exact JSON types (str keys, finite floats, 64-bit ints)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_INT64 <= value < _INT64
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(type(k) is str and _plain_json(v) for k, v in value.items())
    if kind is list:
        return all(_plain_json(v) for v in value)
    return False


def _parses_back(text: str, value: Any) -> bool:
    try:
        return bool(orjson.loads(text) == value)
    except orjson.JSONDecodeError:  # e.g. a lone surrogate
        return False


def thaw(value: Any) -> Any:
    """Deep mutable copy of a JSON-like value (frozen or not), keeping key order."""
    if isinstance(value, dict):
        return {k: v if type(v) in _ATOMS else thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _ATOMS else thaw(v) for v in value]
    return value


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building millions of containers (none of them in a cycle)
    would otherwise trigger collections that walk the whole growing heap, a quadratic cost."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Database:
    """Immutable named tables of records keyed by id; shared by every fork made from it.

    Building it costs O(records): the cyclic garbage collector is paused meanwhile. With
    ``permanent=True`` (a base kept for the life of the process, like the domains' shared databases),
    every object alive afterwards is moved to the collector's permanent generation (``gc.freeze()``),
    so later collections no longer walk the base.
    """

    def __init__(self, tables: Mapping[str, Mapping[str, Any]], *, permanent: bool = False):
        with gc_paused():
            self._tables: dict[str, FrozenDict] = {
                name: FrozenDict((str(key), _freeze_record(rec)) for key, rec in table.items())
                for name, table in tables.items()
            }
        if permanent:
            gc.freeze()
        self._indexes: dict[tuple[str, KeyFn], dict[Hashable, list[str]]] = {}
        self._positions: dict[str, dict[str, int]] = {}
        self._memos: dict[Callable[[Database], Any], Any] = {}
        self._loader: tuple[Callable[..., Database], tuple[Any, ...]] | None = None

    def loaded_by(self, loader: Callable[..., Database], *args: Any) -> Database:
        """Say that ``loader(*args)`` gives this database: it then pickles as that call (a few bytes,
        and the unpickling process shares its own cached copy) instead of as every record."""
        self._loader = (loader, args)
        return self

    def __reduce_ex__(self, protocol: Any) -> Any:
        if self._loader is not None:
            return self._loader
        return super().__reduce_ex__(protocol)

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(self._tables)

    def table(self, name: str) -> Mapping[str, Any]:
        """The frozen base table ``name``."""
        return self._tables[name]

    def size(self) -> int:
        """Number of records over all tables."""
        return sum(len(t) for t in self._tables.values())

    @cached_property
    def fingerprint(self) -> str:
        """Canonical hash of the whole base, computed once on first use."""
        return jsonio.digest(self._tables)

    def fork(self) -> Fork:
        return Fork(self)

    def index(self, table: str, key_fn: KeyFn) -> dict[Hashable, list[str]]:
        """``{key_fn(record): [keys in table order]}``, built on first use and kept.

        Records for which ``key_fn`` raises are left out of the index.
        """
        found = self._indexes.get((table, key_fn))
        if found is None:
            found = {}
            for key, record in self._tables[table].items():
                try:
                    value = key_fn(record)
                except (KeyError, TypeError, AttributeError):
                    continue
                found.setdefault(value, []).append(key)
            self._indexes[(table, key_fn)] = found
        return found

    def memo(self, fn: Callable[[Database], _T]) -> _T:
        """``fn(self)``, computed on first use and kept: for values derived from the frozen base."""
        try:
            return self._memos[fn]  # type: ignore[no-any-return]
        except KeyError:
            value = self._memos[fn] = fn(self)
            return value

    def position(self, table: str, key: str) -> int | None:
        """Where ``key`` stands in the base table's order (``None`` if absent)."""
        positions = self._positions.get(table)
        if positions is None:
            positions = self._positions[table] = {k: i for i, k in enumerate(self._tables[table])}
        return positions.get(key)

    def copy_of(self, table: str, key: str) -> Record | None:
        """A mutable deep copy of a base record (``None`` if absent): what a fork's first write gets."""
        record = self._tables[table].get(key)
        if isinstance(record, FrozenRecord):
            return record.mutable_copy()
        return None if record is None else thaw(record)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """A mutable deep copy of all tables."""
        return {name: thaw(table) for name, table in self._tables.items()}


_DELETED = None


def _matches(key_fn: KeyFn, record: Any, value: Hashable) -> bool:
    try:
        return bool(key_fn(record) == value)
    except (KeyError, TypeError, AttributeError):
        return False


def _or(position: int | None, fallback: int) -> int:
    return fallback if position is None else position


class StateView:
    """Read access to a database state: the base seen through an overlay of changed records."""

    __slots__ = ("_base", "_tables", "_overlay")

    def __init__(self, base: Database, overlay: dict[str, dict[str, Any]]):
        self._base = base
        self._tables = base._tables  # the base's tables, read without a call
        self._overlay = overlay

    def __getstate__(self) -> tuple[Any, ...]:
        return self._base, self._overlay

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        StateView.__init__(self, *state)

    @property
    def base(self) -> Database:
        return self._base

    def get(self, table: str, key: str) -> Any:
        """The record, or ``None`` if absent. Treat it as read-only."""
        changed = self._overlay.get(table)
        if changed is not None and key in changed:
            return changed[key]
        return self._tables[table].get(key)

    def __contains__(self, item: tuple[str, str]) -> bool:
        table, key = item
        return self.get(table, key) is not None

    def keys(self, table: str) -> Iterator[str]:
        if not self._overlay.get(table):  # the base's own: iterated in C
            return iter(self._tables[table])
        return (key for key, _ in self._merged(table))

    def items(self, table: str) -> Iterator[tuple[str, Any]]:
        """Records in base order, then records added by the overlay."""
        if not self._overlay.get(table):  # the base's own: iterated in C
            return iter(self._tables[table].items())
        return self._merged(table)

    def _merged(self, table: str) -> Iterator[tuple[str, Any]]:
        base = self._tables[table]
        changed = self._overlay[table]
        for key, record in base.items():
            if key in changed:
                record = changed[key]
                if record is _DELETED:
                    continue
            yield key, record
        for key, record in changed.items():
            if record is not _DELETED and key not in base:
                yield key, record

    def changed(self, table: str) -> Iterator[tuple[str, Any]]:
        """``(key, record or None where removed)`` of the records this state changed or added in ``table``."""
        return iter(self._overlay.get(table, {}).items())

    def find(self, table: str, key_fn: KeyFn, value: Hashable) -> list[str]:
        """Keys of the records with ``key_fn(record) == value``, in :meth:`items` order.

        Uses the base's index, so it costs O(matches + records this state changed), not O(table).
        """
        changed = self._overlay.get(table, {})
        hits = [k for k in self._base.index(table, key_fn).get(value, ()) if k not in changed]
        if not changed:
            return hits
        for key, record in changed.items():
            if record is not _DELETED and _matches(key_fn, record, value):
                hits.append(key)
        added = {k: i for i, k in enumerate(changed)}
        size = len(self._base.table(table))
        return sorted(hits, key=lambda k: _or(self._base.position(table, k), size + added.get(k, 0)))

    def diff(self) -> Diff:
        """Records that differ from the base: ``{table: {key: record or None}}``. Costs O(touched)."""
        out: Diff = {}
        for table, changed in self._overlay.items():
            base = self._base.table(table)
            for key, record in changed.items():
                if record != base.get(key):
                    out.setdefault(table, {})[key] = record
        return out

    def state_hash(self) -> str:
        """Canonical hash of this state: equal states of the same base hash equal."""
        return jsonio.digest([self._base.fingerprint, self.diff()])


class Fork(StateView):
    """A mutable, copy-on-write view of a :class:`Database` for one episode."""

    __slots__ = ("_fresh", "_kept", "_owned", "_snapshot")

    def __init__(self, base: Database):
        super().__init__(base, {})
        self._owned: set[tuple[str, str]] = set()
        """Records copied whole since the last snapshot: this fork's alone, changed in place."""
        self._fresh: set[int] = set()
        """Ids of the containers :meth:`write_path` copied since the last snapshot (any container made
        since then is this fork's alone, so an id reused by a newer one is still right)."""
        self._snapshot: StateView | None = None
        self._kept: dict[str, dict[str, Any]] = {}
        """The tables of the last snapshot (or restored view): a table of the overlay that is one of
        them is shared with it, and copied before it changes."""

    def __getstate__(self) -> tuple[Any, ...]:
        """What was copied since the last snapshot is not carried: it is copied again when written."""
        return self._base, self._overlay, self._snapshot, self._kept

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        base, overlay, snapshot, kept = state
        Fork.__init__(self, base)
        self._overlay, self._snapshot, self._kept = overlay, snapshot, kept

    def write(self, table: str, key: str) -> Record:
        """A mutable record for ``key``, copied into this fork on first write. KeyError if absent."""
        if (table, key) in self._owned:
            return self._overlay[table][key]  # type: ignore[no-any-return]
        changed = self._overlay.get(table)
        if changed is not None and key in changed:
            current = changed[key]  # changed earlier, and since then kept by a snapshot
            copy = None if current is _DELETED else thaw(current)
        else:
            copy = self._base.copy_of(table, key)
        if copy is None:
            raise KeyError(f"{table}/{key}")
        return self._own(table, key, copy)

    def write_path(self, table: str, key: str, *path: str | int) -> Any:
        """The container at ``path`` inside record ``key``, mutable, copied along the path only.

        For a small change in a large record (one seat count among a month of dates, one payment
        method of a user): the rest of the record stays shared with the state it came from. Change
        only the returned container's own entries; :meth:`write` gives a copy to change anywhere.
        Containers already copied since the last snapshot are not copied again. KeyError if absent.
        """
        changed = self._overlay.get(table)
        if changed is not None and key in changed:
            node: Any = changed[key]
            if (table, key) in self._owned:  # wholly this fork's: change it in place
                for step in path:
                    node = node[step]
                return node
        else:
            node = self._tables[table].get(key)
        if node is None:
            raise KeyError(f"{table}/{key}")
        fresh = self._fresh
        if id(node) not in fresh:
            node = dict(node)
            fresh.add(id(node))
            self._table(table)[key] = node
            self._snapshot = None
        for step in path:  # copied after the last snapshot, so the snapshot is already let go
            child = node[step]
            if id(child) not in fresh:
                child = dict(child) if isinstance(child, dict) else list(child)
                fresh.add(id(child))
                node[step] = child
            node = child
        return node

    def insert(self, table: str, key: str, record: Record, *, handed_over: bool = False) -> Record:
        """Add a new record: a copy of ``record``, or ``record`` itself when it is ``handed_over`` (made
        for this record and kept nowhere else, so the fork may change it). KeyError if the key exists."""
        if self.get(table, key) is not None:
            raise KeyError(f"{table}/{key} already exists")
        return self._own(table, key, record if handed_over else thaw(record))

    def delete(self, table: str, key: str) -> None:
        if self.get(table, key) is None:
            raise KeyError(f"{table}/{key}")
        self._snapshot = None
        self._table(table)[key] = _DELETED
        self._owned.discard((table, key))

    def _own(self, table: str, key: str, record: Record) -> Record:
        self._snapshot = None
        self._table(table)[key] = record
        self._owned.add((table, key))
        return record

    def _table(self, table: str) -> dict[str, Any]:
        """The overlay's ``table``, to change: copied first if the last snapshot keeps it."""
        changed = self._overlay.get(table)
        if changed is None:
            changed = self._overlay[table] = {}
        elif self._kept.get(table) is changed:
            changed = self._overlay[table] = dict(changed)
        return changed

    def snapshot(self) -> StateView:
        """A frozen view of the current state, O(tables touched): it shares the fork's tables, and
        the fork copies a table, and each record, before changing it."""
        if self._snapshot is None:
            kept = self._kept = dict(self._overlay)
            self._snapshot = StateView(self._base, kept)
            self._owned.clear()
            self._fresh.clear()
        return self._snapshot

    def restore(self, view: StateView) -> None:
        """Return to a state taken by :meth:`snapshot` of this fork."""
        if view.base is not self._base:
            raise ValueError("snapshot of another database")
        self._kept = view._overlay
        self._overlay = dict(view._overlay)
        self._owned.clear()
        self._fresh.clear()
        self._snapshot = view

    @property
    def touched(self) -> int:
        """Number of records this fork holds in its overlay."""
        return sum(len(c) for c in self._overlay.values())
