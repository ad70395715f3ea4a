"""The 16 retail tools, behaving exactly like τ-bench's (names, arguments, outputs, errors, changes)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Literal

from apigen_gym.core.database import Fork, Record
from apigen_gym.core.tools import ToolError, ToolKind, ToolSet, dumps, tool
from apigen_gym.kit.common_tools import calculate, think, transfer_to_human_agents

CANCEL_REASONS = ("no longer needed", "ordered by mistake")


def _order(db: Fork, order_id: str) -> Record:
    order = db.get("orders", order_id)
    if order is None:
        raise ToolError("order not found")
    return order  # type: ignore[no-any-return]


def _payment_method(db: Fork, user_id: str, payment_method_id: str) -> Any:
    method = db.get("users", user_id)["payment_methods"].get(payment_method_id)
    if method is None:
        raise ToolError("payment method not found")
    return method


def _credit_gift_card(db: Fork, user_id: str, payment_method_id: str, amount: float) -> None:
    """Add ``amount`` (negative to charge) to a gift card balance, rounded to cents."""
    method = db.write_path("users", user_id, "payment_methods", payment_method_id)
    method["balance"] = round(method["balance"] + amount, 2)


def _check_items_in_order(order: Record, item_ids: list[str], error: str | None = None) -> None:
    """Every id in ``item_ids`` is in the order, at least as many times as it is listed."""
    in_order = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > in_order.count(item_id):
            raise ToolError(error or f"{item_id} not found")


def _price_difference(db: Fork, order: Record, item_ids: list[str], new_item_ids: list[str]) -> float:
    """New minus old price of swapping each item for a variant of the same product (unrounded)."""
    if len(item_ids) != len(new_item_ids):
        raise ToolError("the number of items to be exchanged should match")
    difference = 0.0
    for item_id, new_item_id in zip(item_ids, new_item_ids):
        item = next(i for i in order["items"] if i["item_id"] == item_id)
        variant = db.get("products", item["product_id"])["variants"].get(new_item_id)
        if variant is None or not variant["available"]:
            raise ToolError(f"new item {new_item_id} not found or available")
        difference += variant["price"] - item["price"]
    return difference


def _email_key(user: Record) -> str:
    return str(user["email"]).lower()


def _name_zip_key(user: Record) -> tuple[str, str, str]:
    name = user["name"]
    return (name["first_name"].lower(), name["last_name"].lower(), user["address"]["zip"])


def _first_user(db: Fork, key_fn: Callable[[Record], Hashable], value: Hashable) -> str:
    """The first user (in table order) whose ``key_fn`` is ``value``, like a scan would find."""
    found = db.find("users", key_fn, value)
    if not found:
        raise ToolError("user not found")
    return found[0]


def _priced_swap(
    db: Fork,
    order: Record,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
    *,
    exchange: bool,
) -> tuple[float, Any]:
    """Check an item swap and its payment; return the price difference and the paying method.

    As in τ-bench, an exchange rounds the difference to cents and a pending-order change does not.
    """
    _check_items_in_order(order, item_ids)
    difference = _price_difference(db, order, item_ids, new_item_ids)
    if exchange:
        difference = round(difference, 2)
    method = _payment_method(db, order["user_id"], payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < difference:
        what = "the price difference" if exchange else "the new item"
        raise ToolError(f"insufficient gift card balance to pay for {what}")
    return difference, method


@tool(ToolKind.WRITE)
def cancel_pending_order(
    db: Fork, order_id: str, reason: Literal["no longer needed", "ordered by mistake"]
) -> str:
    """Cancel a pending order. Payments are refunded: gift cards at once, other methods in 5-7 business days.

    Args:
        order_id: the order id, with its leading '#', e.g. '#W0000000'.
        reason: why the user cancels: 'no longer needed' or 'ordered by mistake'.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be cancelled")
    if reason not in CANCEL_REASONS:
        raise ToolError("invalid reason")
    refunds = [
        {"transaction_type": "refund", "amount": p["amount"], "payment_method_id": p["payment_method_id"]}
        for p in order["payment_history"]
    ]
    for refund in refunds:
        if "gift_card" in refund["payment_method_id"]:
            _credit_gift_card(db, order["user_id"], refund["payment_method_id"], refund["amount"])
    order = db.write_path("orders", order_id)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    db.write_path("orders", order_id, "payment_history").extend(refunds)
    return dumps(order)


@tool(ToolKind.WRITE)
def exchange_delivered_order_items(
    db: Fork, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Ask to exchange items of a delivered order for other options of the same products.

    Can be done once per order. The price difference is charged to, or refunded on, the given method.

    Args:
        order_id: the order id, with its leading '#'.
        item_ids: the items to exchange; an item bought twice may be listed twice.
        new_item_ids: the new item for each entry of item_ids, in the same order.
        payment_method_id: pays or receives the price difference; a gift card must cover it.
    """
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError("non-delivered order cannot be exchanged")
    difference, _ = _priced_swap(db, order, item_ids, new_item_ids, payment_method_id, exchange=True)
    order = db.write_path("orders", order_id)
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(item_ids)
    order["exchange_new_items"] = sorted(new_item_ids)
    order["exchange_payment_method_id"] = payment_method_id
    order["exchange_price_difference"] = difference
    return dumps(order)


@tool(ToolKind.READ)
def find_user_id_by_email(db: Fork, email: str) -> str:
    """Find a user id by email address (case-insensitive).

    Args:
        email: the user's email, e.g. 'jane.doe1234@example.com'.
    """
    return _first_user(db, _email_key, email.lower())


@tool(ToolKind.READ)
def find_user_id_by_name_zip(db: Fork, first_name: str, last_name: str, zip: str) -> str:
    """Find a user id by first name, last name (both case-insensitive) and zip code.

    Args:
        first_name: the user's first name.
        last_name: the user's last name.
        zip: the five-digit zip code of the user's address.
    """
    return _first_user(db, _name_zip_key, (first_name.lower(), last_name.lower(), zip))


@tool(ToolKind.READ)
def get_order_details(db: Fork, order_id: str) -> str:
    """Get an order's status, items, address, fulfillments and payments.

    Args:
        order_id: the order id, with its leading '#'.
    """
    return dumps(_order(db, order_id))


@tool(ToolKind.READ)
def get_product_details(db: Fork, product_id: str) -> str:
    """Get a product and all its variants (item id, options, availability, price).

    Args:
        product_id: the product id (not an item id).
    """
    product = db.get("products", product_id)
    if product is None:
        raise ToolError("product not found")
    return dumps(product)


@tool(ToolKind.READ)
def get_user_details(db: Fork, user_id: str) -> str:
    """Get a user's profile: name, address, email, payment methods and orders.

    Args:
        user_id: the user id, e.g. 'jane_doe_1234'.
    """
    user = db.get("users", user_id)
    if user is None:
        raise ToolError("user not found")
    return dumps(user)


@tool(ToolKind.READ)
def list_all_product_types(db: Fork) -> str:
    """List every product type as a map from product name to product id, sorted by name."""
    by_name = {product["name"]: product["product_id"] for _, product in db.items("products")}
    return dumps(dict(sorted(by_name.items())))


def _address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> dict[str, str]:
    return {
        "address1": address1,
        "address2": address2,
        "city": city,
        "state": state,
        "country": country,
        "zip": zip,
    }


@tool(ToolKind.WRITE)
def modify_pending_order_address(
    db: Fork, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Change the shipping address of a pending order.

    Args:
        order_id: the order id, with its leading '#'.
        address1: first address line, e.g. '123 Main St'.
        address2: second address line, e.g. 'Apt 1' (may be empty).
        city: the city.
        state: the state, e.g. 'CA'.
        country: the country, e.g. 'USA'.
        zip: the zip code.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    order = db.write_path("orders", order_id)
    order["address"] = _address(address1, address2, city, state, country, zip)
    return dumps(order)


@tool(ToolKind.WRITE)
def modify_pending_order_items(
    db: Fork, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Swap items of a pending order for other options of the same products. Can be done once per order.

    Args:
        order_id: the order id, with its leading '#'.
        item_ids: the items to change; an item bought twice may be listed twice.
        new_item_ids: the new item for each entry of item_ids, in the same order.
        payment_method_id: pays or receives the price difference; a gift card must cover it.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    difference, method = _priced_swap(db, order, item_ids, new_item_ids, payment_method_id, exchange=False)
    order = db.write_path("orders", order_id)
    db.write_path("orders", order_id, "payment_history").append(
        {
            "transaction_type": "payment" if difference > 0 else "refund",
            "amount": abs(difference),
            "payment_method_id": payment_method_id,
        }
    )
    if method["source"] == "gift_card":
        _credit_gift_card(db, order["user_id"], payment_method_id, -difference)
    items = db.write_path("orders", order_id, "items")
    for item_id, new_item_id in zip(item_ids, new_item_ids):
        position = next(n for n, i in enumerate(items) if i["item_id"] == item_id)
        item = db.write_path("orders", order_id, "items", position)
        variant = db.get("products", item["product_id"])["variants"][new_item_id]
        item["item_id"] = new_item_id
        item["price"] = variant["price"]
        item["options"] = dict(variant["options"])
    order["status"] = "pending (item modified)"
    return dumps(order)


@tool(ToolKind.WRITE)
def modify_pending_order_payment(db: Fork, order_id: str, payment_method_id: str) -> str:
    """Pay a pending order with another of the user's payment methods; the old one is refunded.

    Args:
        order_id: the order id, with its leading '#'.
        payment_method_id: the new method, different from the current one; a gift card must cover the total.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError("non-pending order cannot be modified")
    method = _payment_method(db, order["user_id"], payment_method_id)
    history = order["payment_history"]
    if len(history) > 1 or history[0]["transaction_type"] != "payment":
        raise ToolError("there should be exactly one payment for a pending order")
    old_method_id = history[0]["payment_method_id"]
    if old_method_id == payment_method_id:
        raise ToolError("the new payment method should be different from the current one")
    amount = history[0]["amount"]
    if method["source"] == "gift_card" and method["balance"] < amount:
        raise ToolError("insufficient gift card balance to pay for the order")
    db.write_path("orders", order_id, "payment_history").extend(
        [
            {"transaction_type": "payment", "amount": amount, "payment_method_id": payment_method_id},
            {"transaction_type": "refund", "amount": amount, "payment_method_id": old_method_id},
        ]
    )
    if method["source"] == "gift_card":
        _credit_gift_card(db, order["user_id"], payment_method_id, -amount)
    if "gift_card" in old_method_id:
        _credit_gift_card(db, order["user_id"], old_method_id, amount)
    return dumps(db.get("orders", order_id))


@tool(ToolKind.WRITE)
def modify_user_address(
    db: Fork, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Change a user's default address.

    Args:
        user_id: the user id, e.g. 'jane_doe_1234'.
        address1: first address line, e.g. '123 Main St'.
        address2: second address line, e.g. 'Apt 1' (may be empty).
        city: the city.
        state: the state, e.g. 'CA'.
        country: the country, e.g. 'USA'.
        zip: the zip code.
    """
    if db.get("users", user_id) is None:
        raise ToolError("user not found")
    user = db.write_path("users", user_id)
    user["address"] = _address(address1, address2, city, state, country, zip)
    return dumps(user)


@tool(ToolKind.WRITE)
def return_delivered_order_items(db: Fork, order_id: str, item_ids: list[str], payment_method_id: str) -> str:
    """Ask to return items of a delivered order; the refund goes to the original method or a gift card.

    Args:
        order_id: the order id, with its leading '#'.
        item_ids: the items to return; an item bought twice may be listed twice.
        payment_method_id: receives the refund: the original payment method or a gift card of the user.
    """
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError("non-delivered order cannot be returned")
    _payment_method(db, order["user_id"], payment_method_id)
    original = order["payment_history"][0]["payment_method_id"]
    if "gift_card" not in payment_method_id and payment_method_id != original:
        raise ToolError("payment method should be either the original payment method or a gift card")
    _check_items_in_order(order, item_ids, error="some item not found")
    order = db.write_path("orders", order_id)
    order["status"] = "return requested"
    order["return_items"] = sorted(item_ids)
    order["return_payment_method_id"] = payment_method_id
    return dumps(order)


TOOLS = ToolSet(
    [
        calculate,
        cancel_pending_order,
        exchange_delivered_order_items,
        find_user_id_by_email,
        find_user_id_by_name_zip,
        get_order_details,
        get_product_details,
        get_user_details,
        list_all_product_types,
        modify_pending_order_address,
        modify_pending_order_items,
        modify_pending_order_payment,
        modify_user_address,
        return_delivered_order_items,
        think,
        transfer_to_human_agents,
    ]
)
