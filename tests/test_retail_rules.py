"""The retail policy rules: one violating and one compliant case per rule, gold traces, oracle episodes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apigen_gym.core.database import Database
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.policy import Trace
from apigen_gym.core.session import replay
from apigen_gym.core.task import Action
from apigen_gym.domains.retail import DOMAIN
from apigen_gym.players.oracle import OracleAgent

Record = dict[str, Any]
ADDRESS = {
    "address1": "1 Test Street",
    "address2": "",
    "city": "Austin",
    "state": "TX",
    "country": "USA",
    "zip": "78701",
}


# Finding suitable records in the τ-bench database ----------------------------------------------


@pytest.fixture(scope="module")
def data_dir(anchors: Path) -> Path:
    return anchors / "retail"


@pytest.fixture(scope="module")
def db(data_dir: Path) -> Database:
    return DOMAIN.database(data_dir)


def orders(db: Database, status: str) -> Iterator[Record]:
    """Orders of ``status``, in database order."""
    return (order for order in db.table("orders").values() if order["status"] == status)


def order_of(db: Database, status: str) -> Record:
    return next(orders(db, status))


def methods(db: Database, user_id: str, source: str) -> list[Record]:
    return [m for m in db.table("users")[user_id]["payment_methods"].values() if m["source"] == source]


def variants(db: Database, item: Record, *, available: bool = True) -> list[Record]:
    """Other variants of the item's product with the given availability."""
    product = db.table("products")[item["product_id"]]
    return [
        v
        for v in product["variants"].values()
        if v["item_id"] != item["item_id"] and v["available"] == available
    ]


def swappable(db: Database, status: str) -> tuple[Record, Record, Record]:
    """An order of ``status``, one of its items and an available other option of that item."""
    for order in orders(db, status):
        for item in order["items"]:
            if variants(db, item):
                return order, item, variants(db, item)[0]
    raise AssertionError(f"no {status} order with a swappable item")


def other_product_item(db: Database, item: Record) -> str:
    """An available item id of a product other than ``item``'s."""
    for product in db.table("products").values():
        if product["product_id"] != item["product_id"]:
            return next(v["item_id"] for v in product["variants"].values() if v["available"])
    raise AssertionError("only one product")


def gift_card_payment_case(db: Database, *, covers: bool) -> tuple[Record, Record]:
    """A pending order paid by another method and a gift card of its user that does (not) cover it."""
    for order in orders(db, "pending"):
        if len(order["payment_history"]) != 1:
            continue
        paid = order["payment_history"][0]
        for card in methods(db, order["user_id"], "gift_card"):
            if card["id"] != paid["payment_method_id"] and (card["balance"] >= paid["amount"]) == covers:
                return order, card
    raise AssertionError("no such order")


def gift_card_items_case(db: Database, status: str) -> tuple[Record, Record, Record, Record, Record]:
    """An order, an item, a gift card of the user, an option too dear for the card and one it covers."""
    for order in orders(db, status):
        for card in methods(db, order["user_id"], "gift_card"):
            for item in order["items"]:
                prices = sorted(variants(db, item), key=lambda v: v["price"])
                cheapest, dearest = (prices[0], prices[-1]) if prices else (item, item)
                if cheapest["price"] - item["price"] <= card["balance"] < dearest["price"] - item["price"]:
                    return order, item, card, dearest, cheapest
    raise AssertionError("no such order")


def user_with_two_plain_methods(db: Database) -> tuple[Record, str]:
    """A delivered order and a non-gift-card method of its user other than the one that paid."""
    for order in orders(db, "delivered"):
        paid = order["payment_history"][0]["payment_method_id"]
        for method in db.table("users")[order["user_id"]]["payment_methods"].values():
            if method["source"] != "gift_card" and method["id"] != paid:
                return order, method["id"]
    raise AssertionError("no such order")


# Building traces ----------------------------------------------------------------------------------


def act(name: str, **arguments: Any) -> Action:
    return Action(name=name, arguments=arguments)


def login(db: Database, user_id: str) -> Action:
    return act("find_user_id_by_email", email=db.table("users")[user_id]["email"])


def swap(name: str, order: Record, item: Record, new_item_id: str, method_id: str | None = None) -> Action:
    """A modify-items or exchange call swapping one item."""
    method = method_id or order["payment_history"][0]["payment_method_id"]
    return act(
        name,
        order_id=order["order_id"],
        item_ids=[item["item_id"]],
        new_item_ids=[new_item_id],
        payment_method_id=method,
    )


def modify_items(order: Record, item: Record, new_item_id: str, method_id: str | None = None) -> Action:
    return swap("modify_pending_order_items", order, item, new_item_id, method_id)


def exchange(order: Record, item: Record, new_item_id: str, method_id: str | None = None) -> Action:
    return swap("exchange_delivered_order_items", order, item, new_item_id, method_id)


def return_items(order: Record, method_id: str | None = None) -> Action:
    method = method_id or order["payment_history"][0]["payment_method_id"]
    item_ids = [order["items"][0]["item_id"]]
    return act(
        "return_delivered_order_items",
        order_id=order["order_id"],
        item_ids=item_ids,
        payment_method_id=method,
    )


def trace_of(db: Database, *actions: Action) -> Trace:
    return replay(DOMAIN.tools, db, actions).trace


def broken(rule_id: str, trace: Trace) -> list[int | None]:
    """Steps at which ``rule_id`` is violated."""
    return [v.step for v in DOMAIN.policy.rule(rule_id)(trace)]


def logged_in(db: Database, order: Record, *actions: Action) -> Trace:
    """A trace that authenticates the owner of ``order`` first."""
    return trace_of(db, login(db, order["user_id"]), *actions)


# The rule set ---------------------------------------------------------------------------------------


def test_every_rule_has_a_unique_id_and_a_description() -> None:
    ids = [r.id for r in DOMAIN.policy.rules]
    assert len(ids) == len(set(ids)) >= 15
    assert all(i.startswith("retail.") for i in ids)
    assert all(r.description.strip() for r in DOMAIN.policy.rules)


def test_policy_text_covers_the_rules() -> None:
    text = DOMAIN.policy.text.lower()
    for fact in ("no longer needed", "ordered by mistake", "pending (item modified)", "gift card", "yes"):
        assert fact in text


def test_rules_survive_malformed_arguments(db: Database) -> None:
    weird: dict[str, Any] = {"order_id": ["#W1"], "user_id": 7, "item_ids": "abc", "new_item_ids": None}
    actions = [act(name, **weird, payment_method_id={"x": 1}, reason=3) for name in DOMAIN.tools.names]
    trace = trace_of(db, *actions)
    assert all(not step.ok for step in trace.steps if step.name != "list_all_product_types")
    assert {v.rule for v in DOMAIN.policy.check(trace)} <= {
        "retail.authenticate_first",
        "retail.cancel_reason",
    }
    assert DOMAIN.policy.check(Trace()) == []
    assert DOMAIN.policy.check(Trace(messages=[])) == []


# Authentication and single user -----------------------------------------------------------------


def test_authenticate_first(db: Database) -> None:
    order = order_of(db, "pending")
    user = order["user_id"]
    read = act("get_order_details", order_id=order["order_id"])
    assert broken("retail.authenticate_first", trace_of(db, read)) == [0]
    assert broken("retail.authenticate_first", trace_of(db, act("get_user_details", user_id=user))) == [0]
    failed_login = act("find_user_id_by_email", email="nobody@example.com")
    assert broken("retail.authenticate_first", trace_of(db, failed_login, read)) == [1]
    general = [act("list_all_product_types"), act("calculate", expression="1 + 2"), act("think", thought="x")]
    assert broken("retail.authenticate_first", trace_of(db, *general, login(db, user), read)) == []
    name = db.table("users")[user]["name"]
    by_zip = act(
        "find_user_id_by_name_zip",
        first_name=name["first_name"],
        last_name=name["last_name"],
        zip=db.table("users")[user]["address"]["zip"],
    )
    assert broken("retail.authenticate_first", trace_of(db, by_zip, read)) == []


def test_single_user(db: Database) -> None:
    mine, theirs = order_of(db, "pending"), order_of(db, "delivered")
    me, other = mine["user_id"], theirs["user_id"]
    assert me != other
    peek = act("get_order_details", order_id=theirs["order_id"])
    assert broken("retail.single_user", logged_in(db, mine, peek)) == [1]
    assert broken("retail.single_user", logged_in(db, mine, act("get_user_details", user_id=other))) == [1]
    assert broken("retail.single_user", logged_in(db, mine, login(db, other))) == [1]
    move = act("modify_user_address", user_id=other, **ADDRESS)
    assert broken("retail.single_user", logged_in(db, mine, move)) == [1]
    fine = [
        act("get_user_details", user_id=me),
        act("get_order_details", order_id=mine["order_id"]),
        act("get_order_details", order_id="#W0000000"),  # no such order: tolerated
        login(db, me),
        act("modify_user_address", user_id=me, **ADDRESS),
    ]
    assert broken("retail.single_user", logged_in(db, mine, *fine)) == []


# Cancelling ----------------------------------------------------------------------------------------


def cancel(order: Record, reason: str = "no longer needed") -> Action:
    return act("cancel_pending_order", order_id=order["order_id"], reason=reason)


@pytest.mark.parametrize("status", ["processed", "delivered", "cancelled"])
def test_cancel_pending_only_judges_the_attempt(db: Database, status: str) -> None:
    order = order_of(db, status)
    trace = logged_in(db, order, cancel(order))
    assert not trace.steps[1].ok
    assert broken("retail.cancel_pending_only", trace) == [1]


def test_cancel_pending_only_allows_pending(db: Database) -> None:
    order = order_of(db, "pending")
    assert broken("retail.cancel_pending_only", logged_in(db, order, cancel(order))) == []


def test_cancel_reason(db: Database) -> None:
    order = order_of(db, "pending")
    assert broken("retail.cancel_reason", logged_in(db, order, cancel(order, "changed my mind"))) == [1]
    assert broken("retail.cancel_reason", logged_in(db, order, cancel(order, "ordered by mistake"))) == []


# Modifying pending orders -----------------------------------------------------------------------


def move_order(order: Record) -> Action:
    return act("modify_pending_order_address", order_id=order["order_id"], **ADDRESS)


def test_modify_pending_only(db: Database) -> None:
    delivered = order_of(db, "delivered")
    assert broken("retail.modify_pending_only", logged_in(db, delivered, move_order(delivered))) == [1]
    order, item, new = swappable(db, "pending")
    after_items = logged_in(db, order, modify_items(order, item, new["item_id"]), move_order(order))
    assert broken("retail.modify_pending_only", after_items) == [2]
    assert broken("retail.modify_pending_only", logged_in(db, order, move_order(order))) == []


def test_modify_items_once(db: Database) -> None:
    order, item, new = swappable(db, "pending")
    first = modify_items(order, item, new["item_id"])
    changed = {**item, "item_id": new["item_id"]}
    again = modify_items(order, changed, item["item_id"])
    assert broken("retail.modify_items_once", logged_in(db, order, first, again)) == [2]
    assert broken("retail.modify_items_once", logged_in(db, order, first)) == []
    rejected = modify_items(order, item, "0000000000")
    assert broken("retail.modify_items_once", logged_in(db, order, rejected, first)) == []


@pytest.mark.parametrize("status", ["pending", "delivered"])
def test_same_product_variant(db: Database, status: str) -> None:
    order, item, new = swappable(db, status)
    make = modify_items if status == "pending" else exchange
    for bad in (other_product_item(db, item), item["item_id"]):
        assert broken("retail.same_product_variant", logged_in(db, order, make(order, item, bad))) == [1]
    assert (
        broken("retail.same_product_variant", logged_in(db, order, make(order, item, new["item_id"]))) == []
    )


def test_same_product_variant_needs_availability(db: Database) -> None:
    for order in orders(db, "pending"):
        for item in order["items"]:
            unavailable = variants(db, item, available=False)
            if unavailable:
                trace = logged_in(db, order, modify_items(order, item, unavailable[0]["item_id"]))
                assert broken("retail.same_product_variant", trace) == [1]
                return
    raise AssertionError("no unavailable variant")


def test_gift_card_covers_a_new_payment(db: Database) -> None:
    for covers in (False, True):
        order, card = gift_card_payment_case(db, covers=covers)
        pay = act("modify_pending_order_payment", order_id=order["order_id"], payment_method_id=card["id"])
        assert broken("retail.gift_card_covers", logged_in(db, order, pay)) == ([] if covers else [1])


@pytest.mark.parametrize("status", ["pending", "delivered"])
def test_gift_card_covers_a_price_increase(db: Database, status: str) -> None:
    order, item, card, dearer, affordable = gift_card_items_case(db, status)
    make = modify_items if status == "pending" else exchange
    trace = logged_in(db, order, make(order, item, dearer["item_id"], card["id"]))
    assert not trace.steps[1].ok
    assert broken("retail.gift_card_covers", trace) == [1]
    trace = logged_in(db, order, make(order, item, affordable["item_id"], card["id"]))
    assert trace.steps[1].ok
    assert broken("retail.gift_card_covers", trace) == []


# Returns and exchanges ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "processed", "cancelled"])
def test_return_exchange_delivered_only(db: Database, status: str) -> None:
    order = order_of(db, status)
    assert broken("retail.return_exchange_delivered_only", logged_in(db, order, return_items(order))) == [1]


def test_exchange_of_a_pending_order_is_a_violation(db: Database) -> None:
    order, item, new = swappable(db, "pending")
    trace = logged_in(db, order, exchange(order, item, new["item_id"]))
    assert broken("retail.return_exchange_delivered_only", trace) == [1]


def test_return_exchange_delivered_allows_delivered(db: Database) -> None:
    order, item, new = swappable(db, "delivered")
    assert broken("retail.return_exchange_delivered_only", logged_in(db, order, return_items(order))) == []
    trace = logged_in(db, order, exchange(order, item, new["item_id"]))
    assert broken("retail.return_exchange_delivered_only", trace) == []


def test_refund_to_original_or_gift_card(db: Database) -> None:
    order, other_method = user_with_two_plain_methods(db)
    rule = "retail.refund_to_original_or_gift_card"
    assert broken(rule, logged_in(db, order, return_items(order, other_method))) == [1]
    assert broken(rule, logged_in(db, order, return_items(order))) == []
    for order in orders(db, "delivered"):
        cards = methods(db, order["user_id"], "gift_card")
        if cards and cards[0]["id"] != order["payment_history"][0]["payment_method_id"]:
            assert broken(rule, logged_in(db, order, return_items(order, cards[0]["id"]))) == []
            return
    raise AssertionError("no delivered order of a user with a gift card")


def test_exchange_once(db: Database) -> None:
    order, item, new = swappable(db, "delivered")
    swap_once = exchange(order, item, new["item_id"])
    assert broken("retail.exchange_once", logged_in(db, order, swap_once, swap_once)) == [2]
    assert broken("retail.exchange_once", logged_in(db, order, return_items(order), swap_once)) == [2]
    assert broken("retail.exchange_once", logged_in(db, order, swap_once)) == []
    rejected = exchange(order, item, "0000000000")
    assert broken("retail.exchange_once", logged_in(db, order, rejected, swap_once)) == []


def test_return_once(db: Database) -> None:
    order, item, new = swappable(db, "delivered")
    back = return_items(order)
    assert broken("retail.return_once", logged_in(db, order, back, back)) == [2]
    assert broken(
        "retail.return_once", logged_in(db, order, exchange(order, item, new["item_id"]), back)
    ) == [2]
    assert broken("retail.return_once", logged_in(db, order, back)) == []


# Dialogue rules, through the env ----------------------------------------------------------------


@pytest.fixture
def env(data_dir: Path) -> ApigenEnv:
    return ApigenEnv("retail", data_dir=data_dir, split="test")


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def env_broken(env: ApigenEnv, rule_id: str) -> list[int | None]:
    return [v.step for v in env.violations() if v.rule == rule_id]


def cancel_task_order(env: ApigenEnv) -> str:
    """Start the first task whose gold cancels an order; return that order's id."""
    task, action = next((t, a) for t in env.tasks for a in t.actions if a.name == "cancel_pending_order")
    env.reset(options={"task_id": task.id})
    return str(action.arguments["order_id"])


def test_confirm_before_write(env: ApigenEnv) -> None:
    order_id = cancel_task_order(env)
    env.step(call("cancel_pending_order", order_id=order_id, reason="no longer needed"))
    assert env_broken(env, "retail.confirm_before_write") == [0]


def test_confirm_before_write_after_an_explicit_yes(env: ApigenEnv) -> None:
    order_id = cancel_task_order(env)
    env.step(f"I will cancel order {order_id} because it is no longer needed. Do you confirm (yes/no)?")
    assert env.messages[-1]["role"] == "user" and "yes" in env.messages[-1]["content"].lower()
    env.step(call("cancel_pending_order", order_id=order_id, reason="no longer needed"))
    assert env_broken(env, "retail.confirm_before_write") == []


def test_one_tool_call_per_turn(env: ApigenEnv) -> None:
    order_id = cancel_task_order(env)
    read = {"name": "get_order_details", "arguments": json.dumps({"order_id": order_id})}
    calls = [{"id": f"c{i}", "type": "function", "function": read} for i in range(2)]
    env.step({"role": "assistant", "content": None, "tool_calls": calls})
    env.step({"role": "assistant", "content": "Let me look.", "tool_calls": calls[:1]})
    env.step({"role": "assistant", "content": None, "tool_calls": calls[:1]})
    env.step(call("get_order_details", order_id=order_id))
    assert env_broken(env, "retail.one_tool_call_per_turn") == [0, 2]


def test_transfer_without_reason_is_a_violation(env: ApigenEnv) -> None:
    env.reset(options={"task_id": "0"})
    env.step(call("transfer_to_human_agents", summary="the user wants help"))
    assert env_broken(env, "retail.transfer_only_out_of_scope") == [0]


@pytest.mark.parametrize(
    "said",
    [
        "I'm sorry, but I cannot help with that using the tools I have.",
        "I'm afraid that request is outside my scope.",
        "That is outside of my tools, unfortunately.",
        "This is beyond my capabilities.",
    ],
)
def test_transfer_after_saying_it_cannot_be_done(env: ApigenEnv, said: str) -> None:
    env.reset(options={"task_id": "0"})
    env.step(said)
    env.step(call("transfer_to_human_agents", summary="out of scope"))
    assert env_broken(env, "retail.transfer_only_out_of_scope") == []


def test_transfer_when_the_user_asks_for_a_human(env: ApigenEnv) -> None:
    first_message, _ = env.reset(options={"task_id": "10"})
    assert "human representative" in first_message
    env.step(call("transfer_to_human_agents", summary="the user asks for a representative"))
    assert env_broken(env, "retail.transfer_only_out_of_scope") == []


# Gold traces and oracle episodes -------------------------------------------------------------------

GOLD_BREAKS = {"retail.authenticate_first", "retail.same_product_variant"}
"""Rules τ-bench's gold actions break: many skip the login, some swap an item for the very same item."""


def test_tau_bench_gold_traces_follow_the_policy(data_dir: Path, db: Database) -> None:
    checked = 0
    for task in DOMAIN.tasks("test", data_dir):
        trace = trace_of(db, *task.actions)
        if not all(step.ok for step in trace.steps):
            continue
        checked += 1
        found = DOMAIN.policy.check(trace)
        for v in found:
            print(f"gold of task {task.id} breaks {v.rule} at step {v.step}: {v.message}")
        assert {v.rule for v in found} <= GOLD_BREAKS, task.id
        for v in found:
            if v.rule == "retail.same_product_variant":
                assert "is the same as the item it replaces" in v.message
            else:
                assert not any(s.name.startswith("find_user") for s in trace.steps[: v.step])
    assert checked > 90


@pytest.mark.parametrize("task_id", ["0", "3", "16", "22", "23", "40", "41"])
def test_oracle_episode_has_no_violation(env: ApigenEnv, task_id: str) -> None:
    obs, info = env.reset(options={"task_id": task_id})
    agent = OracleAgent(DOMAIN.tools)
    agent.reset(info, env.task)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs))
        done = terminated or truncated
    assert reward == 1.0
    assert env.termination == "user_stop"
    assert env.state_diff()  # the episode wrote something
    assert env.violations() == []
