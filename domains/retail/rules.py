"""Executable retail policy rules: predicates over a trace of tool calls, and the dialogue when known.

Every rule judges the attempt: a forbidden call is a violation even when the tool rejected it. States
are read only through ``step.before`` / ``step.after``; records that do not exist are tolerated (the
tool reports those as errors, which are not policy violations by themselves).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apigen_gym.core.policy import Finding, Rule, Step, Trace, rule
from apigen_gym.core.tools import ToolKind
from apigen_gym.domains.retail.tools import CANCEL_REASONS, TOOLS
from apigen_gym.kit.rules import (
    authentication_rule,
    confirmation_rule,
    one_tool_call_per_turn_rule,
    single_user_rule,
    transfer_rule,
)

IDENTIFY = ("find_user_id_by_email", "find_user_id_by_name_zip")
ANYONE_MAY_CALL = frozenset(
    {
        *IDENTIFY,
        "calculate",
        "think",
        "list_all_product_types",
        "get_product_details",
        "transfer_to_human_agents",
    }
)
USER_SPECIFIC = tuple(name for name in TOOLS.names if name not in ANYONE_MAY_CALL)
WRITES = tuple(t.name for t in TOOLS.of_kind(ToolKind.WRITE))
USER_TOOLS = ("get_user_details", "modify_user_address")
ORDER_TOOLS = tuple(name for name in USER_SPECIFIC if name not in USER_TOOLS)
MODIFY = ("modify_pending_order_address", "modify_pending_order_payment", "modify_pending_order_items")
SWAPS = ("modify_pending_order_items", "exchange_delivered_order_items")
RETURN, EXCHANGE = "return_delivered_order_items", "exchange_delivered_order_items"
AFTER_SALES = (RETURN, EXCHANGE)
AFTER_SALES_STATUSES = ("return requested", "exchange requested")
ITEMS_MODIFIED = "pending (item modified)"

# Helpers -----------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """``value`` if it is a string (arguments of rejected calls may have any type)."""
    return value if isinstance(value, str) else None


def _record(step: Step, table: str, key: Any) -> dict[str, Any] | None:
    """The record ``key`` of ``table`` in the state before ``step``, or ``None``."""
    found = step.before.get(table, key) if isinstance(key, str) else None
    return found if isinstance(found, dict) else None


def _order(step: Step) -> dict[str, Any] | None:
    """The order the step acts on, as it was before the step."""
    return _record(step, "orders", step.arg("order_id"))


def _status(step: Step) -> str | None:
    order = _order(step)
    return None if order is None else order.get("status")


def _owner(step: Step) -> str | None:
    """The user whose data the step reads or changes, when known."""
    if step.name in USER_TOOLS:
        return _text(step.arg("user_id"))
    if step.name in ORDER_TOOLS:
        order = _order(step)
        return None if order is None else _text(order.get("user_id"))
    return None


def _id_list(step: Step, name: str) -> list[str]:
    """A list-of-ids argument, keeping only the strings (empty if it is not a list)."""
    value = step.arg(name)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _swaps(step: Step) -> Iterator[tuple[dict[str, Any], str, dict[str, Any] | None]]:
    """``(old item, new item id, product)`` for each pair of an items swap, old items found in the order."""
    order = _order(step) or {}
    items = [i for i in order.get("items", []) if isinstance(i, dict)]
    for item_id, new_item_id in zip(_id_list(step, "item_ids"), _id_list(step, "new_item_ids")):
        item = next((i for i in items if i.get("item_id") == item_id), None)
        if item is not None:
            yield item, new_item_id, _record(step, "products", item.get("product_id"))


def _variant(product: dict[str, Any] | None, item_id: str) -> dict[str, Any] | None:
    variant = (product or {}).get("variants", {}).get(item_id)
    return variant if isinstance(variant, dict) else None


def _price_increase(step: Step) -> float | None:
    """What the swap costs (new minus old prices), as the tool computes it; ``None`` if unknown."""
    item_ids, new_item_ids = _id_list(step, "item_ids"), _id_list(step, "new_item_ids")
    pairs = list(_swaps(step))
    if not pairs or len(pairs) != len(item_ids) or len(item_ids) != len(new_item_ids):
        return None
    total = 0.0
    for item, new_item_id, product in pairs:
        variant = _variant(product, new_item_id)
        if variant is None:
            return None
        total += variant["price"] - item["price"]
    return round(total, 2) if step.name == EXCHANGE else total


def _amount_to_cover(step: Step) -> float | None:
    """What the step's payment method must pay: a swap's price increase or the order's payment."""
    if step.name in SWAPS:
        return _price_increase(step)
    history = (_order(step) or {}).get("payment_history") or [{}]
    amount = history[0].get("amount") if step.name == "modify_pending_order_payment" else None
    return amount if isinstance(amount, (int, float)) else None


def _payment_method(step: Step) -> dict[str, Any] | None:
    """The order owner's payment method named by the step, before the step."""
    user = _record(step, "users", (_order(step) or {}).get("user_id")) or {}
    method = user.get("payment_methods", {}).get(_text(step.arg("payment_method_id")) or "")
    return method if isinstance(method, dict) else None


def _status_findings(trace: Trace, names: tuple[str, ...], allowed: str) -> Iterator[Finding]:
    """Calls of ``names`` on an order whose status before the call is not ``allowed``."""
    for step in trace.calls(*names):
        status = _status(step)
        if status is not None and status != allowed:
            yield (
                step,
                f"{step.name} on order {step.arg('order_id')} whose status is {status!r}, not {allowed!r}",
            )


def _repeat_findings(
    trace: Trace, names: tuple[str, ...], family: tuple[str, ...], done: tuple[str, ...]
) -> Iterator[Finding]:
    """Calls of ``names`` on an order already changed by ``family`` (status in ``done``, or done here)."""
    # An earlier call counts only if the tool accepted it: a rejected call changed nothing.
    changed: set[str] = set()
    for step in trace.steps:
        order_id = _text(step.arg("order_id"))
        if step.name in names and (order_id in changed or _status(step) in done):
            yield step, f"{step.name} on order {order_id}, which was already changed that way once"
        if step.name in family and step.ok and order_id is not None:
            changed.add(order_id)


# Rules -------------------------------------------------------------------------------------------


authenticate_first = authentication_rule("retail.authenticate_first", IDENTIFY, USER_SPECIFIC)
single_user = single_user_rule("retail.single_user", IDENTIFY, _owner)
confirm_before_write = confirmation_rule("retail.confirm_before_write", WRITES)
one_tool_call_per_turn = one_tool_call_per_turn_rule("retail.one_tool_call_per_turn")

transfer_only_out_of_scope = transfer_rule("retail.transfer_only_out_of_scope")


@rule("retail.cancel_pending_only")
def cancel_pending_only(trace: Trace) -> Iterator[Finding]:
    """Cancel only orders whose status is 'pending'."""
    yield from _status_findings(trace, ("cancel_pending_order",), "pending")


@rule("retail.cancel_reason")
def cancel_reason(trace: Trace) -> Iterator[Finding]:
    """Cancel only for the reason 'no longer needed' or 'ordered by mistake'."""
    for step in trace.calls("cancel_pending_order"):
        if step.arg("reason") not in CANCEL_REASONS:
            yield step, f"cancellation reason {step.arg('reason')!r} is not one of {list(CANCEL_REASONS)}"


@rule("retail.modify_pending_only")
def modify_pending_only(trace: Trace) -> Iterator[Finding]:
    """Modify the address, payment or items only of orders whose status is exactly 'pending'."""
    yield from _status_findings(trace, MODIFY, "pending")


@rule("retail.modify_items_once")
def modify_items_once(trace: Trace) -> Iterator[Finding]:
    """Modify the items of an order at most once, all items in one call."""
    names = ("modify_pending_order_items",)
    yield from _repeat_findings(trace, names, names, (ITEMS_MODIFIED,))


@rule("retail.same_product_variant")
def same_product_variant(trace: Trace) -> Iterator[Finding]:
    """Swap an item only for a different, available option of the same product."""
    for step in trace.calls(*SWAPS):
        for item, new_item_id, product in _swaps(step):
            variant = _variant(product, new_item_id)
            if new_item_id == item.get("item_id"):
                yield step, f"new item {new_item_id} is the same as the item it replaces"
            elif variant is None:
                yield step, f"new item {new_item_id} is not an option of product {item.get('product_id')}"
            elif not variant.get("available"):
                yield step, f"new item {new_item_id} is not available"


@rule("retail.gift_card_covers")
def gift_card_covers(trace: Trace) -> Iterator[Finding]:
    """Pay with a gift card only if its balance covers the amount (price increase or order total)."""
    for step in trace.calls(*SWAPS, "modify_pending_order_payment"):
        method, amount = _payment_method(step), _amount_to_cover(step)
        if method is None or amount is None or method.get("source") != "gift_card":
            continue
        if method.get("balance", 0) < amount:
            yield (
                step,
                (
                    f"gift card {step.arg('payment_method_id')} has {method.get('balance')}, "
                    f"less than the {amount:.2f} it must pay"
                ),
            )


@rule("retail.return_exchange_delivered_only")
def return_exchange_delivered_only(trace: Trace) -> Iterator[Finding]:
    """Return or exchange items only of orders whose status is 'delivered'."""
    yield from _status_findings(trace, AFTER_SALES, "delivered")


@rule("retail.refund_to_original_or_gift_card")
def refund_to_original_or_gift_card(trace: Trace) -> Iterator[Finding]:
    """Refund a return to the order's original payment method or to one of the user's gift cards."""
    for step in trace.calls(RETURN):
        order = _order(step)
        if order is None or not order.get("payment_history"):
            continue
        method, method_id = _payment_method(step), step.arg("payment_method_id")
        original = order["payment_history"][0].get("payment_method_id")
        if method_id != original and (method or {}).get("source") != "gift_card":
            yield step, f"refund to {method_id}, neither the original method {original} nor a gift card"


@rule("retail.exchange_once")
def exchange_once(trace: Trace) -> Iterator[Finding]:
    """Exchange items of an order only if it was never returned or exchanged: one call per order."""
    yield from _repeat_findings(trace, (EXCHANGE,), AFTER_SALES, AFTER_SALES_STATUSES)


@rule("retail.return_once")
def return_once(trace: Trace) -> Iterator[Finding]:
    """Return items of an order only if it was never returned or exchanged: one call per order."""
    yield from _repeat_findings(trace, (RETURN,), AFTER_SALES, AFTER_SALES_STATUSES)


RULES: list[Rule] = [
    authenticate_first,
    single_user,
    confirm_before_write,
    one_tool_call_per_turn,
    transfer_only_out_of_scope,
    cancel_pending_only,
    cancel_reason,
    modify_pending_only,
    modify_items_once,
    same_product_variant,
    gift_card_covers,
    return_exchange_delivered_only,
    refund_to_original_or_gift_card,
    exchange_once,
    return_once,
]
