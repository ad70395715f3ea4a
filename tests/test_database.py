"""Database, Fork and StateView: an immutable base, copy-on-write forks, diffs, snapshots and hashes."""

from __future__ import annotations

import copy
import gc
import json
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apigen_gym.core.database import Database, Fork, FrozenRecord, freeze, json_text

TABLES: dict[str, dict[str, Any]] = {
    "users": {
        "u1": {"name": {"first": "Ada", "last": "Byron"}, "tags": ["a", "b"], "balance": 10.5},
        "u2": {"name": {"first": "Alan", "last": "Turing"}, "tags": [], "balance": 0},
        "u3": {"name": {"first": "Grace", "last": "Hopper"}, "tags": ["c"], "balance": 99.99},
    },
    "orders": {
        "#1": {"user": "u1", "items": [{"id": "i1", "price": 1.0}], "status": "pending"},
        "#2": {"user": "u2", "items": [], "status": "delivered"},
    },
}


@pytest.fixture()
def db() -> Database:
    return Database(copy.deepcopy(TABLES))


# --- the base is read-only ------------------------------------------------------------------------


def test_base_records_serialise_once_and_copy_from_their_text(db: Database) -> None:
    record = db.table("users")["u1"]
    assert isinstance(record, FrozenRecord)
    assert (
        record.json_text() == json.dumps(TABLES["users"]["u1"]) and record.json_text() is record.json_text()
    )
    copies = [db.copy_of("users", "u1") for _ in range(2)]  # the first walks, the second parses the text
    for copy_ in copies:
        assert copy_ == TABLES["users"]["u1"] and type(copy_["name"]) is dict and type(copy_["tags"]) is list
        copy_["name"]["first"] = "changed"
    assert db.table("users")["u1"]["name"]["first"] == "Ada" and db.copy_of("users", "nobody") is None
    odd = Database({"t": {"k": {"pair": (1, 2), "nan": float("nan"), "big": 2**70}}})
    for _ in range(2):  # values JSON would not give back exactly are copied as they are
        copy_ = odd.copy_of("t", "k")
        assert copy_ is not None and copy_["pair"] == (1, 2) and copy_["big"] == 2**70
        assert copy_["nan"] != copy_["nan"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=24,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_JSON, st.data())
def test_json_text_is_json_dumps_of_plain_and_read_only_parts(value: Any, data: st.DataObject) -> None:
    """A value mixing plain and read-only (base) parts, as a record copied along a path is."""

    def mixed(node: Any) -> Any:
        if isinstance(node, dict | list):
            inner = (
                {k: mixed(v) for k, v in node.items()} if isinstance(node, dict) else [mixed(v) for v in node]
            )
            return freeze(inner) if data.draw(st.booleans()) else inner
        return node

    value = mixed(value)
    assert json_text(value) == json.dumps(value) == json_text(value)  # the second time from kept texts


def test_write_path_copies_along_the_path_only(db: Database) -> None:
    fork = db.fork()
    before = fork.snapshot()
    fork.write_path("users", "u1", "name")["first"] = "Augusta"
    record = fork.get("users", "u1")
    assert record["name"]["first"] == "Augusta" and record["tags"] is db.table("users")["u1"]["tags"]
    assert (
        before.get("users", "u1")["name"]["first"] == "Ada"
        and db.table("users")["u1"]["name"]["first"] == "Ada"
    )
    middle = fork.snapshot()
    fork.write("users", "u1")["tags"].append("z")  # a full write after it copies the shared parts
    assert middle.get("users", "u1")["tags"] == ["a", "b"] and fork.get("users", "u1")["tags"] == [
        "a",
        "b",
        "z",
    ]
    fork.write_path("users", "u1", "name")["last"] = "King"  # owned now: changed in place
    assert fork.get("users", "u1")["name"] == {"first": "Augusta", "last": "King"}
    fork.restore(before)
    assert fork.diff() == {}
    with pytest.raises(KeyError):
        fork.write_path("users", "nobody", "name")
    name = fork.write_path("users", "u2", "name")  # two paths of one record in one step compose
    tags = fork.write_path("users", "u2", "tags")
    name["first"], name["last"] = "A", "B"
    tags.append("t")
    assert fork.get("users", "u2") == {"name": {"first": "A", "last": "B"}, "tags": ["t"], "balance": 0}
    assert db.table("users")["u2"]["tags"] == []


def test_snapshots_share_tables_until_the_fork_changes_them(db: Database) -> None:
    fork = db.fork()
    fork.write_path("users", "u1", "name")["first"] = "Augusta"
    first = fork.snapshot()
    fork.write_path("orders", "#1")["status"] = "cancelled"  # another table: users stays shared
    second = fork.snapshot()
    fork.write_path("users", "u2", "name")["first"] = "Alonzo"
    fork.delete("orders", "#2")
    for view in (first, second):
        assert view.get("users", "u1")["name"]["first"] == "Augusta"
        assert view.get("users", "u2")["name"]["first"] == "Alan" and view.get("orders", "#2") is not None
    assert (
        first.get("orders", "#1")["status"] == "pending"
        and second.get("orders", "#1")["status"] == "cancelled"
    )
    twin, kept = pickle.loads(pickle.dumps((fork, second)))  # as an env travels to another process
    twin.write_path("users", "u1", "name")["first"] = "Ada"
    twin.write_path("orders", "#1")["status"] = "returned"
    assert (
        kept.get("users", "u1")["name"]["first"] == "Augusta"
        and kept.get("orders", "#1")["status"] == "cancelled"
    )
    fork.restore(first)
    fork.write_path("users", "u1", "name")["first"] = "Grace"  # the restored tables are the view's: copied
    assert first.get("users", "u1")["name"]["first"] == "Augusta" and fork.get("orders", "#2") is not None


def test_building_pauses_the_collector_and_a_permanent_base_is_frozen() -> None:
    assert gc.isenabled()
    Database(copy.deepcopy(TABLES))
    assert gc.isenabled()
    gc.disable()
    try:
        Database(copy.deepcopy(TABLES))
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
    Database(copy.deepcopy(TABLES), permanent=True)
    assert gc.get_freeze_count() > 0


def test_memo_and_changed(db: Database) -> None:
    calls: list[int] = []

    def count(base: Database) -> int:
        calls.append(1)
        return base.size()

    assert db.memo(count) == db.memo(count) == 5 and len(calls) == 1
    fork = db.fork()
    fork.write("users", "u1")["balance"] = 1
    fork.delete("users", "u2")
    fork.insert("users", "u9", {"name": {}})
    assert dict(fork.changed("users")) == {"u1": fork.get("users", "u1"), "u2": None, "u9": {"name": {}}}
    assert list(fork.changed("orders")) == []


def test_base_records_are_read_only(db: Database) -> None:
    user = db.table("users")["u1"]
    with pytest.raises(TypeError):
        user["balance"] = 0
    with pytest.raises(TypeError):
        del user["balance"]
    with pytest.raises(TypeError):
        user.update(balance=1)
    with pytest.raises(TypeError):
        user.setdefault("new", 1)
    with pytest.raises(TypeError):
        user.pop("balance")
    with pytest.raises(TypeError):
        user.clear()
    with pytest.raises(TypeError):
        user |= {"x": 1}
    with pytest.raises(TypeError):
        user["name"]["first"] = "Eve"
    with pytest.raises(TypeError):
        user["tags"].append("z")
    with pytest.raises(TypeError):
        user["tags"][0] = "z"
    with pytest.raises(TypeError):
        user["tags"] += ["z"]
    with pytest.raises(TypeError):
        user["tags"].sort()
    with pytest.raises(TypeError):
        db.table("orders")["#1"]["items"][0]["price"] = 2.0
    with pytest.raises(TypeError):
        db.table("users")["u9"] = {}
    assert db.to_dict() == TABLES


def test_unwritten_fork_reads_are_read_only(db: Database) -> None:
    fork = db.fork()
    with pytest.raises(TypeError):
        fork.get("users", "u1")["balance"] = 0
    assert fork.diff() == {}


def test_database_does_not_alias_its_input() -> None:
    tables = copy.deepcopy(TABLES)
    db = Database(tables)
    tables["users"]["u1"]["balance"] = -1
    tables["users"]["u1"]["tags"].append("z")
    assert db.table("users")["u1"]["balance"] == 10.5
    assert db.table("users")["u1"]["tags"] == ["a", "b"]


def test_frozen_records_serialise_like_plain_dicts(db: Database) -> None:
    for name, table in TABLES.items():
        for key, record in table.items():
            frozen = db.table(name)[key]
            assert isinstance(frozen, dict)
            assert frozen == record
            assert json.dumps(frozen) == json.dumps(record)
    restored = pickle.loads(pickle.dumps(db.table("users")["u1"]))
    assert restored == TABLES["users"]["u1"]
    with pytest.raises(TypeError):
        restored["balance"] = 0


def test_to_dict_is_a_mutable_copy(db: Database) -> None:
    tables = db.to_dict()
    tables["users"]["u1"]["name"]["first"] = "Eve"
    tables["users"]["u1"]["tags"].append("z")
    assert db.table("users")["u1"]["name"]["first"] == "Ada"
    assert db.size() == 5
    assert db.table_names == ("users", "orders")


# --- copy on write ----------------------------------------------------------------------------------


def test_write_copies_on_first_write(db: Database) -> None:
    fork = db.fork()
    assert fork.touched == 0
    record = fork.write("users", "u1")
    assert fork.touched == 1
    record["balance"] = 1.0
    record["tags"].append("z")
    record["name"]["first"] = "Eve"
    # the same mutable copy is handed out again, and reads see it
    assert fork.write("users", "u1") is record
    assert fork.get("users", "u1") is record
    assert fork.touched == 1
    # the base and other records are untouched
    assert db.table("users")["u1"] == TABLES["users"]["u1"]
    assert fork.get("users", "u2") is db.table("users")["u2"]
    with pytest.raises(KeyError):
        fork.write("users", "nobody")


def test_diff_lists_only_changed_records(db: Database) -> None:
    fork = db.fork()
    fork.write("users", "u1")  # touched, not changed
    fork.write("orders", "#1")["status"] = "pending"  # same value
    assert fork.diff() == {}
    fork.write("orders", "#2")["status"] = "cancelled"
    expected = copy.deepcopy(TABLES["orders"]["#2"])
    expected["status"] = "cancelled"
    assert fork.diff() == {"orders": {"#2": expected}}
    fork.write("orders", "#2")["status"] = "delivered"  # changed back
    assert fork.diff() == {}


def test_insert_and_delete_appear_in_diff(db: Database) -> None:
    fork = db.fork()
    new = {"name": {"first": "Katherine", "last": "Johnson"}, "tags": [], "balance": 1}
    inserted = fork.insert("users", "u4", new)
    assert inserted == new and inserted is not new
    new["balance"] = 2  # the fork keeps its own copy
    fork.delete("orders", "#1")
    assert fork.get("orders", "#1") is None
    assert ("orders", "#1") not in fork
    assert ("users", "u4") in fork
    assert fork.diff() == {
        "users": {"u4": {"name": {"first": "Katherine", "last": "Johnson"}, "tags": [], "balance": 1}},
        "orders": {"#1": None},
    }
    with pytest.raises(KeyError):
        fork.insert("users", "u1", {})
    with pytest.raises(KeyError):
        fork.delete("orders", "#1")
    with pytest.raises(KeyError):
        fork.write("orders", "#1")
    # a deleted base record may be inserted again; identical to the base means no change
    fork.insert("orders", "#1", copy.deepcopy(TABLES["orders"]["#1"]))
    # an inserted record that is deleted again leaves no trace
    fork.delete("users", "u4")
    assert fork.diff() == {}


def test_items_sees_overlay_in_base_order_with_new_keys_last(db: Database) -> None:
    fork = db.fork()
    fork.insert("users", "u0", {"name": {}, "tags": [], "balance": 0})
    fork.write("users", "u2")["balance"] = 5
    fork.delete("users", "u1")
    fork.insert("users", "a-new", {"name": {}, "tags": [], "balance": 1})
    items = list(fork.items("users"))
    assert [k for k, _ in items] == ["u2", "u3", "u0", "a-new"]
    assert dict(items)["u2"]["balance"] == 5
    assert list(fork.keys("users")) == ["u2", "u3", "u0", "a-new"]
    # deleting and re-inserting a base key keeps its base position
    fork.insert("users", "u1", {"name": {}, "tags": [], "balance": 7})
    assert list(fork.keys("users")) == ["u1", "u2", "u3", "u0", "a-new"]
    assert list(db.fork().keys("users")) == ["u1", "u2", "u3"]


# --- snapshots and restore --------------------------------------------------------------------------


def test_snapshot_does_not_see_later_writes(db: Database) -> None:
    fork = db.fork()
    fork.write("users", "u1")["balance"] = 1
    snap = fork.snapshot()
    # a record already copied before the snapshot is copied again on the next write
    fork.write("users", "u1")["balance"] = 2
    fork.write("users", "u2")["balance"] = 3
    fork.insert("users", "u4", {"x": 1})
    fork.delete("orders", "#2")
    assert snap.get("users", "u1")["balance"] == 1
    assert snap.get("users", "u2")["balance"] == 0
    assert snap.get("users", "u4") is None
    assert snap.get("orders", "#2") is not None
    assert set(snap.diff()) == {"users"} and list(snap.diff()["users"]) == ["u1"]
    assert fork.get("users", "u1")["balance"] == 2


def test_snapshot_is_stable_and_cheap(db: Database) -> None:
    fork = db.fork()
    fork.write("users", "u1")["balance"] = 1
    first = fork.snapshot()
    assert fork.snapshot() is first  # nothing changed in between
    fork.write("users", "u1")["balance"] = 2
    second = fork.snapshot()
    assert second is not first
    assert first.get("users", "u1")["balance"] == 1
    assert second.get("users", "u1")["balance"] == 2


def test_restore_returns_to_a_snapshot(db: Database) -> None:
    fork = db.fork()
    fork.write("users", "u1")["balance"] = 1
    snap = fork.snapshot()
    before = fork.state_hash()
    fork.write("users", "u1")["balance"] = 2
    fork.insert("users", "u4", {"x": 1})
    fork.delete("orders", "#1")
    fork.restore(snap)
    assert fork.state_hash() == before
    assert fork.get("users", "u1")["balance"] == 1
    assert fork.get("users", "u4") is None
    assert fork.get("orders", "#1") == TABLES["orders"]["#1"]
    # writing after a restore must not corrupt the snapshot
    fork.write("users", "u1")["balance"] = 3
    assert snap.get("users", "u1")["balance"] == 1
    fork.restore(snap)
    assert fork.get("users", "u1")["balance"] == 1
    with pytest.raises(ValueError):
        fork.restore(Database(TABLES).fork().snapshot())


# --- hashes and isolation ---------------------------------------------------------------------------


def test_state_hash_equal_iff_states_equal(db: Database) -> None:
    a, b = db.fork(), db.fork()
    assert a.state_hash() == b.state_hash()
    a.write("users", "u1")["balance"] = 1
    assert a.state_hash() != b.state_hash()
    # the same state reached another way (touching more records, other order) hashes the same
    b.write("orders", "#1")
    b.write("users", "u2")["balance"] = 0
    b.write("users", "u1")["balance"] = 1
    assert a.state_hash() == b.state_hash()
    b.write("users", "u1")["balance"] = 1.5
    assert a.state_hash() != b.state_hash()
    b.write("users", "u1")["balance"] = 1
    b.delete("orders", "#2")
    assert a.state_hash() != b.state_hash()
    assert a.snapshot().state_hash() == a.state_hash()
    # another base with other content hashes differently even with no changes
    other = copy.deepcopy(TABLES)
    other["users"]["u3"]["balance"] = 0
    assert Database(other).fork().state_hash() != db.fork().state_hash()
    assert Database(copy.deepcopy(TABLES)).fork().state_hash() == db.fork().state_hash()


def test_forks_are_isolated(db: Database) -> None:
    a, b = db.fork(), db.fork()
    a.write("users", "u1")["balance"] = 1
    a.insert("users", "u4", {"x": 1})
    b.delete("users", "u2")
    assert b.get("users", "u1")["balance"] == 10.5
    assert b.get("users", "u4") is None
    assert a.get("users", "u2") is not None
    assert list(a.diff()["users"]) == ["u1", "u4"]
    assert b.diff() == {"users": {"u2": None}}
    assert db.table("users")["u1"]["balance"] == 10.5


# --- property: a fork behaves like a deep copy ------------------------------------------------------

KEYS = ["u1", "u2", "u3", "u4", "u5"]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([0.5, 1.25, 10.0]), st.text(max_size=3)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=6,
)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("set"), st.sampled_from(KEYS), st.sampled_from(["balance", "tags", "x"]), json_values
        ),
        st.tuples(st.just("append"), st.sampled_from(KEYS), json_values),
        st.tuples(st.just("set_first_name"), st.sampled_from(KEYS), json_scalars),
        st.tuples(st.just("insert"), st.sampled_from(KEYS), json_values),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("snapshot")),
        st.tuples(st.just("restore")),
    ),
    max_size=25,
)


def _naive_diff(base: dict[str, Any], state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key in set(base) | set(state):
        if base.get(key) != state.get(key):
            out.setdefault("users", {})[key] = state.get(key)
    return out


@settings(max_examples=150, deadline=None, derandomize=True)
@given(operations)
def test_fork_equals_deep_copy(ops: list[tuple[Any, ...]]) -> None:
    db = Database(copy.deepcopy(TABLES))
    base = copy.deepcopy(TABLES["users"])
    fork: Fork = db.fork()
    plain = copy.deepcopy(base)
    saved: tuple[Any, dict[str, Any]] | None = None
    for op in ops:
        kind = op[0]
        if kind == "set":
            _, key, field, value = op
            if key in plain:
                fork.write("users", key)[field] = copy.deepcopy(value)
                plain[key][field] = copy.deepcopy(value)
            else:
                with pytest.raises(KeyError):
                    fork.write("users", key)
        elif kind == "append":
            _, key, value = op
            if key in plain:
                fork.write("users", key).setdefault("log", []).append(copy.deepcopy(value))
                plain[key].setdefault("log", []).append(copy.deepcopy(value))
        elif kind == "set_first_name":  # a change deep in the record, copied along its path only
            _, key, value = op
            if isinstance(plain.get(key, {}).get("name"), dict):
                fork.write_path("users", key, "name")["first"] = value
                plain[key]["name"]["first"] = value
        elif kind == "insert":
            _, key, value = op
            record = {"value": value}
            if key in plain:
                with pytest.raises(KeyError):
                    fork.insert("users", key, record)
            else:
                fork.insert("users", key, record)
                plain[key] = copy.deepcopy(record)
            record["value"] = "mutated after insert"  # the fork must hold its own copy
        elif kind == "delete":
            _, key = op
            if key in plain:
                fork.delete("users", key)
                del plain[key]
            else:
                with pytest.raises(KeyError):
                    fork.delete("users", key)
        elif kind == "snapshot":
            saved = (fork.snapshot(), copy.deepcopy(plain))
        elif kind == "restore" and saved is not None:
            fork.restore(saved[0])
            plain = copy.deepcopy(saved[1])
        # the fork reads like the plain copy at every point
        assert dict(fork.items("users")) == plain
        assert fork.diff() == _naive_diff(base, plain)
    for key in KEYS:
        assert fork.get("users", key) == plain.get(key)
    assert db.table("users") == base  # the base never changes
    if saved is not None:  # a snapshot keeps its state whatever happened after it
        assert dict(saved[0].items("users")) == saved[1]
    # the same final state built directly hashes the same
    direct = db.fork()
    for key, record in _naive_diff(base, plain).get("users", {}).items():
        if record is None:
            direct.delete("users", key)
        elif key in base:
            target = direct.write("users", key)
            target.clear()
            target.update(copy.deepcopy(record))
        else:
            direct.insert("users", key, record)
    assert direct.state_hash() == fork.state_hash()
    assert direct.diff() == fork.diff()
