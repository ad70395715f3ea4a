"""The seeded retail database generator and the data files it ships."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from apigen_gym.domains.retail import generator

Tables = dict[str, dict[str, dict[str, Any]]]
DATA = Path(generator.__file__).parent / "db"
ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "tau_bench" / "retail" / "db"
STATUSES = {
    "pending",
    "processed",
    "delivered",
    "cancelled",
    "return requested",
    "exchange requested",
    "pending (item modified)",
}
STATUS_FIELDS = {
    "return requested": ["return_items", "return_payment_method_id"],
    "exchange requested": [
        "exchange_items",
        "exchange_new_items",
        "exchange_payment_method_id",
        "exchange_price_difference",
    ],
}
SIGN = {"payment": 1, "refund": -1}
ORDER_KEYS = ["order_id", "user_id", "address", "items", "fulfillments", "status", "payment_history"]


@pytest.fixture(scope="module")
def tables() -> Tables:
    return generator.generate()


def _methods(tables: Tables) -> dict[str, dict[str, Any]]:
    return {pid: m for user in tables["users"].values() for pid, m in user["payment_methods"].items()}


@pytest.mark.parametrize("name", ["users", "orders", "products"])
def test_shipped_files_are_the_default_seed(tables: Tables, name: str) -> None:
    expected = json.dumps(tables[name], indent=1, ensure_ascii=False) + "\n"
    assert (DATA / f"{name}.json").read_bytes() == expected.encode()


def test_sizes(tables: Tables) -> None:
    assert list(tables) == ["users", "orders", "products"]
    assert (len(tables["users"]), len(tables["orders"]), len(tables["products"])) == (500, 1000, 50)
    variants = [p["variants"] for p in tables["products"].values()]
    assert all(5 <= len(v) <= 20 for v in variants)
    assert 550 <= sum(map(len, variants)) <= 700
    flags = [variant["available"] for v in variants for variant in v.values()]
    assert 0 < flags.count(False) < flags.count(True)


def test_record_shapes(tables: Tables) -> None:
    for user_id, user in tables["users"].items():
        first, last = user["name"]["first_name"], user["name"]["last_name"]
        assert user_id.startswith(f"{first.lower()}_{last.lower()}_") and user_id[-4:].isdigit()
        assert list(user) == ["name", "address", "email", "payment_methods", "orders"]
        assert list(user["address"]) == ["address1", "address2", "city", "country", "state", "zip"]
    for order_id, order in tables["orders"].items():
        assert order_id == order["order_id"] and order_id[:2] == "#W" and len(order_id) == 9
        assert list(order) == ORDER_KEYS + STATUS_FIELDS.get(order["status"], [])
        shipped = order["status"] not in ("pending", "pending (item modified)")
        assert len(order["fulfillments"]) == int(shipped)
    for product_id, product in tables["products"].items():
        assert product_id == product["product_id"] and len(product_id) == 10 and product_id.isdigit()
        for item_id, variant in product["variants"].items():
            assert (
                list(variant) == ["item_id", "options", "available", "price"]
                and item_id == variant["item_id"]
            )


@pytest.mark.skipif(not ANCHORS.is_dir(), reason="τ-bench anchors not available")
def test_key_orders_match_tau_bench(tables: Tables) -> None:
    reference = {name: json.loads((ANCHORS / f"{name}.json").read_text()) for name in tables}

    def key_orders(table: dict[str, dict[str, Any]]) -> set[tuple[str, ...]]:
        return {tuple(record) for record in table.values()}

    for name in ("users", "products"):
        assert key_orders(tables[name]) == key_orders(reference[name])
    ref_methods, our_methods = _methods(reference), _methods(tables)
    assert {tuple(m) for m in our_methods.values()} == {tuple(m) for m in ref_methods.values()}


def test_every_status_present(tables: Tables) -> None:
    counts = Counter(order["status"] for order in tables["orders"].values())
    assert set(counts) == STATUSES
    for status in ("return requested", "exchange requested", "pending (item modified)"):
        assert 15 <= counts[status] <= 35


def test_status_specific_records(tables: Tables) -> None:
    for order in tables["orders"].values():
        history = order["payment_history"]
        item_ids = [item["item_id"] for item in order["items"]]
        status = order["status"]
        assert len(item_ids) == len(set(item_ids))
        if status == "cancelled":
            assert [row["transaction_type"] for row in history] == ["payment", "refund"]
            assert history[1]["amount"] == history[0]["amount"] and "cancel_reason" not in order
        elif status == "pending (item modified)":
            assert len(history) == 2
        elif status == "return requested":
            assert order["return_items"] == sorted(order["return_items"])
            assert set(order["return_items"]) <= set(item_ids)
        elif status == "exchange requested":
            assert order["exchange_items"] == sorted(order["exchange_items"]) and order["exchange_items"]
            assert set(order["exchange_items"]) <= set(item_ids)
            assert len(order["exchange_new_items"]) == len(order["exchange_items"])
        if status not in ("cancelled", "pending (item modified)"):
            assert len(history) == 1


def test_payment_methods(tables: Tables) -> None:
    kinds = Counter(m["source"] for m in _methods(tables).values())
    assert set(kinds) == {"credit_card", "gift_card", "paypal"} and min(kinds.values()) > 100
    assert all(1 <= len(user["payment_methods"]) <= 3 for user in tables["users"].values())
    for method_id, method in _methods(tables).items():
        assert method["id"] == method_id and method_id.startswith(method["source"] + "_")
        if method["source"] == "gift_card":
            assert isinstance(method["balance"], float) and round(method["balance"], 2) == method["balance"]


def test_orders_belong_to_users_and_are_paid_by_them(tables: Tables) -> None:
    users, orders = tables["users"], tables["orders"]
    assert sorted(oid for user in users.values() for oid in user["orders"]) == sorted(orders)
    methods = _methods(tables)
    for order_id, order in orders.items():
        user = users[order["user_id"]]
        assert order_id in user["orders"]
        paid_with = [row["payment_method_id"] for row in order["payment_history"]]
        paid_with += [
            order[key] for key in ("return_payment_method_id", "exchange_payment_method_id") if key in order
        ]
        assert all(method_id in user["payment_methods"] for method_id in paid_with)
        for row in order["payment_history"]:
            method = methods[row["payment_method_id"]]
            if method["source"] == "gift_card" and row["transaction_type"] == "payment":
                assert row["amount"] <= method["balance"]
    assert all(user["orders"] for user in users.values())
    assert sum(len(set(orders[o]["status"] for o in u["orders"])) >= 3 for u in users.values()) >= 20


def test_items_match_the_catalogue_and_amounts_add_up(tables: Tables) -> None:
    products = tables["products"]
    for order in tables["orders"].values():
        for item in order["items"]:
            product = products[item["product_id"]]
            variant = product["variants"][item["item_id"]]
            assert item["name"] == product["name"]
            assert (item["price"], item["options"]) == (variant["price"], variant["options"])
        net = sum(row["amount"] * SIGN[row["transaction_type"]] for row in order["payment_history"])
        total = round(sum(item["price"] for item in order["items"]), 2)
        expected = 0.0 if order["status"] == "cancelled" else total
        assert net == pytest.approx(expected, abs=0.005)
        if order["status"] != "pending (item modified)":
            assert order["payment_history"][0]["amount"] == total
        for new_id in order.get("exchange_new_items", []):
            assert any(
                new_id in p["variants"] and p["variants"][new_id]["available"] for p in products.values()
            )


def test_users_are_findable_uniquely(tables: Tables) -> None:
    users = tables["users"].values()
    emails = [user["email"] for user in users]
    lookups = [(u["name"]["first_name"], u["name"]["last_name"], u["address"]["zip"]) for u in users]
    assert len(set(emails)) == len(emails) and len(set(lookups)) == len(lookups)
    assert all(email.endswith("@example.com") for email in emails)


def test_scale_two_doubles_users_orders_and_the_catalogue() -> None:
    tables = generator.generate(scale=2)
    assert (len(tables["users"]), len(tables["orders"]), len(tables["products"])) == (1000, 2000, 100)
    methods = [pid for user in tables["users"].values() for pid in user["payment_methods"]]
    tracking = [t for o in tables["orders"].values() for f in o["fulfillments"] for t in f["tracking_id"]]
    assert len(set(methods)) == len(methods) and len(set(tracking)) == len(tracking)
    item_ids = [item for product in tables["products"].values() for item in product["variants"]]
    assert len(set(item_ids) | set(tables["products"])) == len(item_ids) + 100
    products = list(tables["products"].values())
    assert products[:50] == list(generator.generate()["products"].values())  # the shipped catalogue first
    names = [p["name"] for p in products]
    assert len(set(names)) == 100 and all(name.endswith(" Series 2") for name in names[50:])
    ordered = {item["product_id"] for o in tables["orders"].values() for item in o["items"]}
    assert ordered & {p["product_id"] for p in products[50:]}  # orders draw from the whole catalogue
    assert len(generator.generate(scale=0.1)["products"]) == 50  # never smaller than shipped


def test_same_seed_same_data_other_seed_other_data() -> None:
    small = generator.generate(seed=7, scale=0.02)
    assert small == generator.generate(seed=7, scale=0.02)
    assert small != generator.generate(seed=8, scale=0.02)
    assert {o["status"] for o in small["orders"].values()} == STATUSES


def test_main_writes_every_table(tmp_path: Path) -> None:
    assert generator.main(["--seed", "3", "--scale", "0.01", "--out", str(tmp_path)]) == 0
    written = {path.name: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert written == {f"{k}.json": v for k, v in generator.generate(seed=3, scale=0.01).items()}
