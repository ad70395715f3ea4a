"""The retail API dependency graph: which tool's output feeds which tool's argument.

Walks start at the identification tools (or at the catalogue, ``list_all_product_types``) and end at
a write, or at a read whose answer the user wants. ``forbidden`` lists ordered pairs of writes that
the policy does not allow on the same order within one conversation (the first one changes the
order's status, or uses up the order's single modification, return or exchange).
"""

from __future__ import annotations

from apigen_gym.core.apigraph import ApiGraph, Edge

IDENTIFY = ("find_user_id_by_email", "find_user_id_by_name_zip")
CANCEL = "cancel_pending_order"
MODIFY_ADDRESS = "modify_pending_order_address"
MODIFY_PAYMENT = "modify_pending_order_payment"
MODIFY_ITEMS = "modify_pending_order_items"
MODIFY_USER_ADDRESS = "modify_user_address"
RETURN = "return_delivered_order_items"
EXCHANGE = "exchange_delivered_order_items"

ORDER_WRITES = (CANCEL, MODIFY_ADDRESS, MODIFY_PAYMENT, MODIFY_ITEMS, RETURN, EXCHANGE)
WRITES = (*ORDER_WRITES, MODIFY_USER_ADDRESS)
PAID_WRITES = (MODIFY_PAYMENT, MODIFY_ITEMS, RETURN, EXCHANGE)
"""Writes with a ``payment_method_id`` argument, taken from the user's profile."""
SWAPS = (MODIFY_ITEMS, EXCHANGE)
"""Writes with ``new_item_ids``, taken from a product's variants."""


def _edges() -> list[Edge]:
    edges = [Edge(tool, "get_user_details", "user_id", "user_id") for tool in IDENTIFY]
    edges += [
        Edge("get_user_details", "get_order_details", "orders[]", "order_id"),
        Edge("get_user_details", MODIFY_USER_ADDRESS, "user_id", "user_id"),
        Edge("get_user_details", MODIFY_ADDRESS, "address", "address1,address2,city,state,country,zip"),
        Edge("list_all_product_types", "get_product_details", "{name: product_id}", "product_id"),
        Edge("get_order_details", "get_product_details", "items[].product_id", "product_id"),
        Edge("get_order_details", "calculate", "items[].price", "expression"),
        Edge("get_product_details", "calculate", "variants.price", "expression"),
    ]
    edges += [Edge("get_user_details", w, "payment_methods", "payment_method_id") for w in PAID_WRITES]
    edges += [Edge("get_order_details", w, "order_id", "order_id") for w in ORDER_WRITES]
    edges += [Edge("get_order_details", w, "items[].item_id", "item_ids") for w in (*SWAPS, RETURN)]
    edges += [Edge("get_order_details", w, "payment_history[0]", "payment_method_id") for w in (RETURN,)]
    edges += [Edge("get_product_details", w, "variants.item_id", "new_item_ids") for w in SWAPS]
    return edges


def _forbidden() -> list[tuple[str, str]]:
    """(earlier write, later write) pairs the policy forbids on one order."""
    after_cancel = [(CANCEL, w) for w in ORDER_WRITES]
    after_items = [(MODIFY_ITEMS, w) for w in ORDER_WRITES]
    after_sales = [(a, b) for a in (RETURN, EXCHANGE) for b in ORDER_WRITES]
    return after_cancel + after_items + after_sales


API_GRAPH = ApiGraph(_edges(), forbidden=_forbidden())
"""The retail API dependency graph."""
