"""A seeded retail task sampler: random walks on the API graph over real database rows.

Each task serves one user, identified by email or by name and zip code, and holds one to three
intents. An intent is chosen by a random walk on :data:`API_GRAPH` from the identification tool (or
from the catalogue) to a write or to a read whose answer the user wants; a builder then picks rows of
the current state that make the intent valid (or, for refusals, that make the policy forbid it) and
writes what the user says and what the gold actions are. Intents are executed as they are built, so a
later intent sees the state the earlier ones left. Every task is validated before it is kept: the
gold actions replay without error, the writes match the intents and no policy rule is broken.

Run ``python -m apigen_gym.domains.retail.sampler --split test`` to regenerate a shipped split.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from apigen_gym.core.database import Database, Record
from apigen_gym.core.task import TWIST_KINDS, Action, Task, TwistKind
from apigen_gym.domains.retail import DOMAIN
from apigen_gym.domains.retail.graph import (
    API_GRAPH,
    CANCEL,
    EXCHANGE,
    MODIFY_ADDRESS,
    MODIFY_ITEMS,
    MODIFY_PAYMENT,
    MODIFY_USER_ADDRESS,
    RETURN,
    WRITES,
)
from apigen_gym.kit.sampling import (
    ACCEPT_REFUSAL,
    DomainSampler,
    Identity,
    Intent,
    IntentMix,
    Late,
    Need,
    Ref,
    SplitSpec,
    TaskBuilder,
    article,
    info_intent,
    join_words,
    money,
    read,
)

CATALOGUE = "list_all_product_types"


SPLITS: dict[str, SplitSpec] = {
    "test": SplitSpec(n=115, seed=20240611, buckets=(0, 1, 2)),
    "dev": SplitSpec(n=20, seed=31, buckets=(3,)),
    "train": SplitSpec(n=300, seed=7, buckets=(4, 5, 6, 7, 8, 9)),
    "evolving": SplitSpec(n=45, seed=14, buckets=(3,), twists=TWIST_KINDS),
}
"""Splits draw from disjoint user pools, so no train task can equal a test task; ``evolving`` holds
tasks whose goal changes mid-conversation, each twist kind in turn (on the dev users, an evaluation
pool of its own)."""

# --- words --------------------------------------------------------------------------------------

STREETS = (
    "Maple Avenue",
    "Cedar Lane",
    "Willow Street",
    "Oak Ridge Road",
    "Lakeview Drive",
    "Elm Street",
    "Pine Court",
    "Hillcrest Road",
    "Sunset Boulevard",
    "River Road",
    "Park Place",
    "Birch Way",
    "Chestnut Street",
    "Highland Avenue",
    "Meadow Lane",
    "Harbor View Drive",
)
CITIES = (
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Seattle", "WA", "981"),
    ("Portland", "OR", "972"),
    ("Chicago", "IL", "606"),
    ("Boston", "MA", "021"),
    ("Phoenix", "AZ", "850"),
    ("San Diego", "CA", "921"),
    ("Columbus", "OH", "432"),
    ("Nashville", "TN", "372"),
    ("Minneapolis", "MN", "554"),
    ("Philadelphia", "PA", "191"),
    ("Miami", "FL", "331"),
    ("Salt Lake City", "UT", "841"),
    ("Raleigh", "NC", "276"),
    ("Kansas City", "MO", "641"),
)
CANCEL_WHY = {
    "no longer needed": ("I don't need it anymore", "you no longer need it"),
    "ordered by mistake": ("I ordered it by mistake", "you ordered it by mistake"),
}


def _options(options: dict[str, str]) -> str:
    return join_words([f"{key} {value}" for key, value in options.items()])


def _address_text(address: dict[str, str]) -> str:
    line = ", ".join(p for p in (address["address1"], address["address2"]) if p)
    return f"{line}, {address['city']}, {address['state']} {address['zip']}, {address['country']}"


def _method_name(method: Record) -> str:
    """How a user names a payment method: by kind, with brand and last digits for cards."""
    if method["source"] == "credit_card":
        return f"{method['brand'].title()} card ending in {method['last_four']}"
    source = str(method["source"])
    return {"gift_card": "gift card", "paypal": "PayPal account"}.get(source, source)


# --- context ------------------------------------------------------------------------------------


class Context(TaskBuilder):
    """A retail task under construction: the user's orders and payment methods as they are now."""

    @property
    def user(self) -> Record:
        return self.view.get("users", self.user_id)  # type: ignore[no-any-return]

    def orders(self, *statuses: str) -> list[Record]:
        found = (self.view.get("orders", order_id) for order_id in self.user["orders"])
        return [o for o in found if o is not None and o["status"] in statuses]

    def methods(self) -> list[Record]:
        """The user's payment methods that the user can name unambiguously."""
        methods = list(self.user["payment_methods"].values())
        names = [_method_name(m) for m in methods]
        return [m for m, name in zip(methods, names) if names.count(name) == 1]

    def gift_cards(self) -> list[Record]:
        return [m for m in self.methods() if m["source"] == "gift_card"]


def _user_read(ctx: Context) -> Action:
    return read("get_user_details", user_id=ctx.user_id)


def _order_ref(ctx: Context, order: Record) -> Ref:
    """By id, or (sometimes) by an item that no other order of the user contains."""
    order_id = order["order_id"]
    reads = (_user_read(ctx), read("get_order_details", order_id=order_id))
    orders = [ctx.view.get("orders", o) for o in ctx.user["orders"]]
    names = [{i["name"] for i in o["items"]} for o in orders if o is not None]
    unique = sorted(n for n in {i["name"] for i in order["items"]} if sum(n in s for s in names) == 1)
    if not unique or ctx.rng.random() < 0.7:
        return Ref(f"order {order_id}", reads)
    earlier = ctx.user["orders"][: ctx.user["orders"].index(order_id) + 1]
    scans = tuple(read("get_order_details", order_id=o) for o in earlier)
    return Ref(f"order with the {ctx.pick(unique).lower()}", (_user_read(ctx), *scans))


def _item_name(order: Record, item: Record) -> str:
    """'the toaster', with its options when the order holds two items of the same product."""
    same = [i for i in order["items"] if i["name"] == item["name"]]
    name = f"the {item['name'].lower()}"
    return name if len(same) == 1 else f"{name} ({_options(item['options'])})"


def _single_items(order: Record) -> list[Record]:
    """Items whose id occurs once in the order (so that naming them is unambiguous)."""
    ids = [i["item_id"] for i in order["items"]]
    return [i for i in order["items"] if ids.count(i["item_id"]) == 1]


def _new_address(ctx: Context) -> dict[str, str]:
    rng = ctx.rng
    city, state, prefix = rng.choice(CITIES)
    unit = rng.choice(("", "Apt", "Suite", "Unit"))
    return {
        "address1": f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
        "address2": f"{unit} {rng.randint(1, 999)}" if unit else "",
        "city": city,
        "state": state,
        "country": "USA",
        "zip": f"{prefix}{rng.randint(0, 99):02d}",
    }


# --- write intents ------------------------------------------------------------------------------


def _cancel(ctx: Context) -> Intent | None:
    order = ctx.pick([o for o in ctx.orders("pending") if ctx.may_write(o["order_id"], CANCEL)])
    if order is None:
        return None
    ref = _order_ref(ctx, order)
    reason = ctx.pick(sorted(CANCEL_WHY))
    said, meant = CANCEL_WHY[reason]
    return Intent(
        kind="cancel",
        subject=order["order_id"],
        request=f"I'd like to cancel {ref.mine} because {said}.",
        goal=f"cancel {ref.yours} because {meant}",
        reads=ref.reads,
        writes=(Action(name=CANCEL, arguments={"order_id": order["order_id"], "reason": reason}),),
        condition=f"If the agent asks why, you explain that {meant}.",
    )


def _modify_address(ctx: Context) -> Intent | None:
    order = ctx.pick([o for o in ctx.orders("pending") if ctx.may_write(o["order_id"], MODIFY_ADDRESS)])
    if order is None:
        return None
    ref = _order_ref(ctx, order)
    moved = MODIFY_USER_ADDRESS in ctx.writes.get(ctx.user_id, [])
    if moved and ctx.rng.random() < 0.7:
        address = {
            k: ctx.user["address"][k] for k in ("address1", "address2", "city", "state", "country", "zip")
        }
        where_me, where_you = "my new default address", "your new default address"
    else:
        address = _new_address(ctx)
        where_me = where_you = _address_text(address)
    if address == {k: order["address"][k] for k in address}:
        return None
    return Intent(
        kind="modify_address",
        subject=order["order_id"],
        request=f"Could you ship {ref.mine} to {where_me} instead?",
        goal=f"have {ref.yours}, which is still pending, shipped to {where_you}",
        reads=ref.reads,
        writes=(Action(name=MODIFY_ADDRESS, arguments={"order_id": order["order_id"], **address}),),
        condition="If the agent reads the address back to you, you check every part of it.",
    )


def _modify_payment(ctx: Context) -> Intent | None:
    orders = [
        o
        for o in ctx.orders("pending")
        if ctx.may_write(o["order_id"], MODIFY_PAYMENT) and len(o["payment_history"]) == 1
    ]
    order = ctx.pick(orders)
    if order is None:
        return None
    paid = order["payment_history"][0]
    methods = [
        m
        for m in ctx.methods()
        if m["id"] != paid["payment_method_id"]
        and (m["source"] != "gift_card" or m["balance"] >= paid["amount"])
    ]
    method = ctx.pick(methods)
    if method is None:
        return None
    ref = _order_ref(ctx, order)
    name = _method_name(method)
    args = {"order_id": order["order_id"], "payment_method_id": method["id"]}
    return Intent(
        kind="modify_payment",
        subject=order["order_id"],
        request=f"I'd like to pay for {ref.mine} with my {name} instead.",
        goal=f"pay for {ref.yours} with your {name} instead of the current method",
        reads=ref.reads,
        writes=(Action(name=MODIFY_PAYMENT, arguments=args),),
        condition=f"If the agent asks which method to use, it is your {name}.",
    )


@dataclass(frozen=True)
class Swap:
    item: Record
    variant: Record
    changed: dict[str, str]


def _swaps(ctx: Context, order: Record, count: int) -> list[Swap]:
    """Up to ``count`` items of ``order``, each with another available option of its product."""
    swaps = []
    items = _single_items(order)
    ctx.rng.shuffle(items)
    for item in items[:count]:
        variants = ctx.view.get("products", item["product_id"])["variants"]
        options = [v for v in variants.values() if v["available"] and v["item_id"] != item["item_id"]]
        variant = ctx.pick(sorted(options, key=lambda v: v["item_id"]))
        if variant is None:
            continue
        changed = {k: v for k, v in variant["options"].items() if item["options"].get(k) != v}
        wanted = {**item["options"], **changed}
        if [v["options"] for v in variants.values()].count(wanted) == 1:
            swaps.append(Swap(item, variant, changed))
    return swaps


def _swap_text(order: Record, swaps: list[Swap]) -> str:
    return join_words([f"{_item_name(order, s.item)} for the one with {_options(s.changed)}" for s in swaps])


def _difference_method(ctx: Context, difference: float) -> Record | None:
    """A payment method that can settle a price difference (a gift card must cover it)."""
    methods = [m for m in ctx.methods() if m["source"] != "gift_card" or m["balance"] >= difference]
    return ctx.pick(methods)


def _swap_intent(ctx: Context, tool: str, statuses: tuple[str, ...]) -> Intent | None:
    order = ctx.pick([o for o in ctx.orders(*statuses) if ctx.may_write(o["order_id"], tool)])
    if order is None:
        return None
    swaps = _swaps(ctx, order, ctx.rng.choice((1, 1, 2)))
    difference = sum(s.variant["price"] - s.item["price"] for s in swaps)
    method = _difference_method(ctx, max(difference, round(difference, 2)))
    if not swaps or method is None:
        return None
    return _swap_request(ctx, tool, order, _order_ref(ctx, order), swaps, method)


def _swap_request(
    ctx: Context, tool: str, order: Record, ref: Ref, swaps: list[Swap], method: Record
) -> Intent:
    """Swapping items of ``order`` (modify a pending order, or exchange a delivered one)."""
    products = tuple(read("get_product_details", product_id=s.item["product_id"]) for s in swaps)
    args = {
        "order_id": order["order_id"],
        "item_ids": [s.item["item_id"] for s in swaps],
        "new_item_ids": [s.variant["item_id"] for s in swaps],
        "payment_method_id": method["id"],
    }
    name, text = _method_name(method), _swap_text(order, swaps)
    verb, state = ("change", "pending") if tool == MODIFY_ITEMS else ("exchange", "delivered")
    return Intent(
        kind="modify_items" if tool == MODIFY_ITEMS else "exchange",
        subject=order["order_id"],
        request=f"For {ref.mine}, I'd like to {verb} {text}. Please use my {name} for any price difference.",
        goal=f"{verb} {text} in your {state} {ref.name}, keeping every other option the same",
        reads=(*ref.reads, *products),
        writes=(Action(name=tool, arguments=args),),
        condition=f"If there is a price difference, you settle it with your {name}.",
    )


def _modify_items(ctx: Context) -> Intent | None:
    return _swap_intent(ctx, MODIFY_ITEMS, ("pending",))


def _exchange(ctx: Context) -> Intent | None:
    return _swap_intent(ctx, EXCHANGE, ("delivered",))


def _modify_user_address(ctx: Context) -> Intent | None:
    if not ctx.fresh(ctx.user_id):
        return None
    address = _new_address(ctx)
    text = _address_text(address)
    return Intent(
        kind="modify_user_address",
        subject=ctx.user_id,
        request=f"I've moved, so please update my default address to {text}.",
        goal=f"update your default address to {text}, because you have moved",
        reads=(_user_read(ctx),),
        writes=(Action(name=MODIFY_USER_ADDRESS, arguments={"user_id": ctx.user_id, **address}),),
    )


def _refund_sum(ctx: Context, order: Record, items: list[Record]) -> tuple[str, tuple[Action, ...]]:
    """The refund of ``items`` as the agent would compute it: a ``calculate`` call for two or more."""
    prices = [i["price"] for i in items]
    if len(prices) == 1:
        return money(prices[0]), ()
    expression = " + ".join(str(p) for p in prices)
    return DOMAIN.tools.execute(ctx.session.fork, "calculate", {"expression": expression}).output, (
        read("calculate", expression=expression),
    )


def _return(ctx: Context) -> Intent | None:
    order = ctx.pick([o for o in ctx.orders("delivered") if ctx.may_write(o["order_id"], RETURN)])
    if order is None:
        return None
    items = _single_items(order)
    ctx.rng.shuffle(items)
    items = sorted(items[: ctx.rng.choice((1, 1, 2, 3))], key=order["items"].index)
    original = order["payment_history"][0]["payment_method_id"]
    gift = ctx.pick(ctx.gift_cards())
    to_gift = gift is not None and gift["id"] != original and ctx.rng.random() < 0.4
    method_id, where = (gift["id"], "my gift card") if to_gift else (original, "the original payment method")
    if not items:
        return None
    ref = _order_ref(ctx, order)
    return _return_request(ctx, order, ref, items, method_id, where, ctx.rng.random() < 0.4)


def _return_request(
    ctx: Context, order: Record, ref: Ref, items: list[Record], method_id: str, where: str, wants_total: bool
) -> Intent:
    """Returning ``items`` of a delivered order, refunded to ``method_id`` (the user calls it ``where``)."""
    names = join_words([_item_name(order, i) for i in items])
    total, calc = _refund_sum(ctx, order, items) if wants_total else ("", ())
    ask = " and tell me how much I will get back" if wants_total else ""
    args = {"order_id": order["order_id"], "item_ids": [i["item_id"] for i in items]}
    return Intent(
        kind="return",
        subject=order["order_id"],
        request=f"I want to return {names} from {ref.mine}. Please refund {where}{ask}.",
        goal=f"return {names} from {ref.yours}"
        + (", and you want to know the total refund" if wants_total else ""),
        reads=(*ref.reads, *calc),
        writes=(Action(name=RETURN, arguments={**args, "payment_method_id": method_id}),),
        outputs=(total,) if wants_total else (),
        condition=f"If asked where the refund should go, you want it on {where.replace('my ', 'your ')}.",
    )


# --- refusals -----------------------------------------------------------------------------------


def _refusal(
    ctx: Context, kind: str, order: Record, attempt: Action, said: str, meant: str, why: str
) -> Intent | None:
    """A request the policy forbids: the reads that show it, no write, and the reason to decline."""
    if not ctx.rejected(attempt):
        return None
    ref = _order_ref(ctx, order)
    return Intent(
        kind=kind,
        subject=order["order_id"],
        request=said.format(ref=ref.mine),
        goal=meant.format(ref=ref.yours),
        reads=ref.reads,
        refuse=why.format(id=order["order_id"], status=order["status"]),
        attempt=attempt,
        condition=ACCEPT_REFUSAL,
    )


def _fresh_order(ctx: Context, *statuses: str) -> Record | None:
    return ctx.pick([o for o in ctx.orders(*statuses) if ctx.fresh(o["order_id"])])


NOT_PENDING = ("processed", "delivered", "pending (item modified)")


def _refuse_cancel(ctx: Context) -> Intent | None:
    order = _fresh_order(ctx, "processed", "delivered")
    if order is None:
        return None
    attempt = Action(name=CANCEL, arguments={"order_id": order["order_id"], "reason": "no longer needed"})
    return _refusal(
        ctx,
        "refuse_cancel",
        order,
        attempt,
        "Please cancel {ref}, I don't need it anymore.",
        "cancel {ref} because you no longer need it",
        "order {id} is already {status}, and only pending orders can be cancelled.",
    )


def _refuse_return(ctx: Context) -> Intent | None:
    order = _fresh_order(ctx, "pending", "processed")
    if order is None:
        return None
    item = order["items"][0]
    method_id = order["payment_history"][0]["payment_method_id"]
    args = {"order_id": order["order_id"], "item_ids": [item["item_id"]], "payment_method_id": method_id}
    names = _item_name(order, item)
    return _refusal(
        ctx,
        "refuse_return",
        order,
        Action(name=RETURN, arguments=args),
        f"I want to return {names} from {{ref}} and get my money back.",
        f"return {names} from {{ref}}, which has not arrived yet",
        "order {id} is {status} and has not been delivered, and only delivered orders can be returned.",
    )


def _refuse_modify_address(ctx: Context) -> Intent | None:
    order = _fresh_order(ctx, *NOT_PENDING)
    if order is None:
        return None
    address = _new_address(ctx)
    text = _address_text(address)
    return _refusal(
        ctx,
        "refuse_modify_address",
        order,
        Action(name=MODIFY_ADDRESS, arguments={"order_id": order["order_id"], **address}),
        f"Can you change the shipping address of {{ref}} to {text}?",
        f"have {{ref}} shipped to {text} instead",
        "order {id} is {status}, and only orders that are exactly pending can be changed.",
    )


def _refuse_modify_payment(ctx: Context) -> Intent | None:
    order = _fresh_order(ctx, *NOT_PENDING)
    current = order["payment_history"][0]["payment_method_id"] if order else None
    method = ctx.pick([m for m in ctx.methods() if m["id"] != current])
    if order is None or method is None:
        return None
    name = _method_name(method)
    args = {"order_id": order["order_id"], "payment_method_id": method["id"]}
    return _refusal(
        ctx,
        "refuse_modify_payment",
        order,
        Action(name=MODIFY_PAYMENT, arguments=args),
        f"I'd like to pay for {{ref}} with my {name} instead.",
        f"pay for {{ref}} with your {name} instead",
        "order {id} is {status}, and only orders that are exactly pending can be changed.",
    )


def _refuse_modify_items(ctx: Context) -> Intent | None:
    order = _fresh_order(ctx, *NOT_PENDING)
    swaps = _swaps(ctx, order, 1) if order else []
    method = ctx.pick(ctx.methods())
    if order is None or not swaps or method is None:
        return None
    args = {
        "order_id": order["order_id"],
        "item_ids": [swaps[0].item["item_id"]],
        "new_item_ids": [swaps[0].variant["item_id"]],
        "payment_method_id": method["id"],
    }
    text = _swap_text(order, swaps)
    return _refusal(
        ctx,
        "refuse_modify_items",
        order,
        Action(name=MODIFY_ITEMS, arguments=args),
        f"In {{ref}}, I'd like to swap {text}.",
        f"swap {text} in {{ref}}",
        "order {id} is {status}, and only items of orders that are exactly pending can be changed.",
    )


def _refuse_exchange_other_product(ctx: Context) -> Intent | None:
    order = _fresh_order(ctx, "delivered")
    if order is None:
        return None
    item = ctx.pick(_single_items(order))
    owned = {i["product_id"] for i in order["items"]}
    others = [p for _, p in ctx.view.items("products") if p["product_id"] not in owned]
    product = ctx.pick(others)
    wanted = ctx.pick(sorted(v["item_id"] for v in _available(product))) if product else None
    if item is None or wanted is None:
        return None
    method_id = order["payment_history"][0]["payment_method_id"]
    args = {"order_id": order["order_id"], "item_ids": [item["item_id"]], "new_item_ids": [wanted]}
    names, other = _item_name(order, item), product["name"].lower()
    return _refusal(
        ctx,
        "refuse_exchange_other_product",
        order,
        Action(name=EXCHANGE, arguments={**args, "payment_method_id": method_id}),
        f"I received {{ref}} and I'd like to exchange {names} for {article(other)}.",
        f"exchange {names} from {{ref}} for {article(other)}",
        "an exchange can only swap an item for another option of the same product.",
    )


# --- information --------------------------------------------------------------------------------


def _order_total(ctx: Context) -> Intent | None:
    orders = [o for o in ctx.orders("pending", "processed", "delivered") if len(o["payment_history"]) == 1]
    order = ctx.pick([o for o in orders if ctx.fresh(o["order_id"])])
    if order is None:
        return None
    ref = _order_ref(ctx, order)
    amount = money(order["payment_history"][0]["amount"])
    return info_intent(
        "info_order_total",
        order["order_id"],
        f"How much did I pay in total for {ref.mine}?",
        f"know how much you paid in total for {ref.yours}",
        ref.reads,
        amount,
    )


def _tracking(ctx: Context) -> Intent | None:
    orders = [o for o in ctx.orders("processed", "delivered") if o["fulfillments"]]
    order = ctx.pick([o for o in orders if ctx.fresh(o["order_id"])])
    if order is None:
        return None
    ref = _order_ref(ctx, order)
    return info_intent(
        "info_tracking",
        order["order_id"],
        f"What is the tracking number of {ref.mine}?",
        f"know the tracking number of {ref.yours}",
        ref.reads,
        order["fulfillments"][0]["tracking_id"][0],
    )


def _available(product: Record) -> list[Record]:
    return [v for v in product["variants"].values() if v["available"]]


def _item_options(ctx: Context) -> Intent | None:
    order = _fresh_order(ctx, "pending", "processed", "delivered")
    item = ctx.pick(order["items"]) if order else None
    if order is None or item is None or not ctx.fresh(item["product_id"]):
        return None
    ref = _order_ref(ctx, order)
    count = len(_available(ctx.view.get("products", item["product_id"])))
    name = _item_name(order, item).removeprefix("the ")
    return info_intent(
        "info_item_options",
        item["product_id"],
        f"How many options of the {name} from {ref.mine} are available right now?",
        f"know how many options of the {name} from {ref.yours} are available right now",
        (*ref.reads, read("get_product_details", product_id=item["product_id"])),
        str(count),
    )


def _refund_estimate(ctx: Context) -> Intent | None:
    order = ctx.pick(
        [o for o in ctx.orders("delivered") if len(_single_items(o)) >= 2 and ctx.fresh(o["order_id"])]
    )
    if order is None:
        return None
    items = _single_items(order)
    ctx.rng.shuffle(items)
    items = sorted(items[: ctx.rng.choice((2, 3))], key=order["items"].index)
    ref = _order_ref(ctx, order)
    total, calc = _refund_sum(ctx, order, items)
    names = join_words([_item_name(order, i) for i in items])
    return info_intent(
        "info_refund_estimate",
        order["order_id"],
        f"If I returned {names} from {ref.mine}, how much money would I get back?",
        f"know how much you would get back for returning {names} from {ref.yours} (not return them yet)",
        (*ref.reads, *calc),
        total,
    )


def _catalogue_product(ctx: Context) -> Record | None:
    products = [p for _, p in ctx.view.items("products") if _available(p) and ctx.fresh(p["product_id"])]
    return ctx.pick(products)


def _catalogue_reads(product: Record) -> tuple[Action, ...]:
    return (read(CATALOGUE), read("get_product_details", product_id=product["product_id"]))


def _product_options(ctx: Context) -> Intent | None:
    product = _catalogue_product(ctx)
    if product is None:
        return None
    name = product["name"].lower()
    return info_intent(
        "info_product_options",
        product["product_id"],
        f"How many {name} options do you have available at the moment?",
        f"know how many {name} options are available in the store right now",
        _catalogue_reads(product),
        str(len(_available(product))),
    )


def _variant_price(ctx: Context) -> Intent | None:
    product = _catalogue_product(ctx)
    variant = ctx.pick(sorted(_available(product), key=lambda v: v["item_id"])) if product else None
    if product is None or variant is None:
        return None
    what = f"{product['name'].lower()} with {_options(variant['options'])}"
    return info_intent(
        "info_variant_price",
        product["product_id"],
        f"How much does the {what} cost?",
        f"know the price of the {what}",
        _catalogue_reads(product),
        money(variant["price"]),
    )


def _cheapest(ctx: Context) -> Intent | None:
    product = _catalogue_product(ctx)
    if product is None:
        return None
    name = product["name"].lower()
    return info_intent(
        "info_cheapest",
        product["product_id"],
        f"What is the price of the cheapest {name} you have available?",
        f"know the price of the cheapest available {name}",
        _catalogue_reads(product),
        money(min(v["price"] for v in _available(product))),
    )


# --- late context -------------------------------------------------------------------------------


def _returnable(ctx: Context, least: int) -> Record | None:
    """A delivered order this task may still return from, with at least ``least`` nameable items."""
    orders = ctx.orders("delivered")
    return ctx.pick(
        [o for o in orders if ctx.may_write(o["order_id"], RETURN) and len(_single_items(o)) >= least]
    )


def _late_return_item(ctx: Context) -> Late | None:
    """A return that gains an item: the user mentions another faulty one when asked to confirm."""
    order = _returnable(ctx, 2)
    if order is None:
        return None
    items = _single_items(order)
    ctx.rng.shuffle(items)
    items = sorted(items[: ctx.rng.choice((2, 2, 3))], key=order["items"].index)
    extra = ctx.pick(items)
    original = order["payment_history"][0]["payment_method_id"]
    ref, where = _order_ref(ctx, order), "the original payment method"
    rest = [i for i in items if i is not extra]
    name = _item_name(order, extra)
    return Late(
        first=_return_request(ctx, order, ref, rest, original, where, False),
        final=_return_request(ctx, order, ref, items, original, where, False),
        said=f"Oh, before you do that: I just noticed {name} from the same order is faulty too. "
        "Please return it as well, all in one go.",
        meant=f"you mention that {name} from that order turned out faulty too, so the return must include it",
    )


def _late_refund_method(ctx: Context) -> Late | None:
    """A return whose refund moves to a gift card: the user says the account they paid with is closed."""
    order = _returnable(ctx, 1)
    gift = ctx.pick(ctx.gift_cards())
    original = order["payment_history"][0]["payment_method_id"] if order else None
    if order is None or gift is None or gift["id"] == original:
        return None
    items = _single_items(order)
    ctx.rng.shuffle(items)
    items = sorted(items[: ctx.rng.choice((1, 1, 2))], key=order["items"].index)
    ref = _order_ref(ctx, order)
    return Late(
        first=_return_request(ctx, order, ref, items, original, "the original payment method", False),
        final=_return_request(ctx, order, ref, items, gift["id"], "my gift card", False),
        said="Wait, one thing I forgot to say: I have closed the account I paid with. "
        "Please put the refund on my gift card instead.",
        meant="you mention that you have closed the account you paid with, so the refund must go to your "
        "gift card instead",
    )


def _late_second_swap(ctx: Context) -> Late | None:
    """Items swapped in one go: the user remembers a second item to change when asked to confirm."""
    tool, statuses = ctx.rng.choice(((MODIFY_ITEMS, ("pending",)), (EXCHANGE, ("delivered",))))
    order = ctx.pick([o for o in ctx.orders(*statuses) if ctx.may_write(o["order_id"], tool)])
    swaps = _swaps(ctx, order, 2) if order else []
    if order is None or len(swaps) < 2:
        return None
    ctx.rng.shuffle(swaps)
    first_difference = swaps[0].variant["price"] - swaps[0].item["price"]
    difference = sum(s.variant["price"] - s.item["price"] for s in swaps)
    method = _difference_method(ctx, max(first_difference, difference, round(difference, 2)))
    if method is None:
        return None
    ref = _order_ref(ctx, order)
    verb = "change" if tool == MODIFY_ITEMS else "exchange"
    late_text = f"{verb} {_swap_text(order, swaps[1:])}"
    both = sorted(swaps, key=lambda swap: order["items"].index(swap.item))
    return Late(
        first=_swap_request(ctx, tool, order, ref, swaps[:1], method),
        final=_swap_request(ctx, tool, order, ref, both, method),
        said=f"Hold on, before you confirm: I'd also like to {late_text}. "
        "Please do both in the same change, the same way.",
        meant=f"you remember that you also want to {late_text}, and both changes must be made together",
    )


LATE: tuple[Callable[[Context], Late | None], ...] = (
    _late_return_item,
    _late_refund_method,
    _late_second_swap,
)
"""Builders of late context: facts the user reveals when asked to confirm, changing the write."""


# --- walks --------------------------------------------------------------------------------------

Builder = Callable[[Context], "Intent | None"]

FAMILIES: dict[str, tuple[Builder, ...]] = {
    CANCEL: (_cancel,),
    MODIFY_ADDRESS: (_modify_address,),
    MODIFY_PAYMENT: (_modify_payment,),
    MODIFY_ITEMS: (_modify_items,),
    MODIFY_USER_ADDRESS: (_modify_user_address,),
    RETURN: (_return,),
    EXCHANGE: (_exchange,),
    "get_order_details": (_order_total, _tracking),
    "get_product_details": (_item_options,),
    "calculate": (_refund_estimate,),
    CATALOGUE: (_product_options, _variant_price, _cheapest),
}
"""Valid-intent builders by the tool a walk ends at (``CATALOGUE``: walks from the catalogue)."""
REFUSALS: dict[str, tuple[Builder, ...]] = {
    CANCEL: (_refuse_cancel,),
    MODIFY_ADDRESS: (_refuse_modify_address,),
    MODIFY_PAYMENT: (_refuse_modify_payment,),
    MODIFY_ITEMS: (_refuse_modify_items,),
    RETURN: (_refuse_return,),
    EXCHANGE: (_refuse_exchange_other_product,),
}
"""Builders of a request for the walk's write that the policy forbids in the user's state."""
REFUSAL_SHARE = 0.12
"""Chance that an unconstrained intent ending at a write is a forbidden request."""

TARGET_WEIGHTS = {"get_order_details": 8.0, MODIFY_USER_ADDRESS: 0.2, "calculate": 0.4, MODIFY_PAYMENT: 2.5}
"""Relative weight of stepping to a tool (default 1): steers walks towards rarer valid intents."""
PROFILE_SHORTCUT = 0.4
"""Factor on order writes reached straight from the profile (without reading the order)."""
STOP_PROBABILITY = {"get_order_details": 0.1, "get_product_details": 0.35}
"""Chance that a walk reaching this read stops there: the user wants the information itself."""
CATALOGUE_START = 0.06
MULTI_WRITE_SHARE = 0.35
"""Share of tasks planned with two writes (then maybe a third, free intent)."""
REFUSAL_TASK_SHARE = 0.08
"""Share of tasks planned to open with a request the policy forbids."""
MIX = IntentMix(FAMILIES, REFUSALS, REFUSAL_SHARE, MULTI_WRITE_SHARE, REFUSAL_TASK_SHARE, late=LATE)
"""How this domain mixes its intents."""


def _step_weight(source: str, target: str) -> float:
    weight = TARGET_WEIGHTS.get(target, 1.0)
    if source == "get_user_details" and target in WRITES and target != MODIFY_USER_ADDRESS:
        return weight * PROFILE_SHORTCUT
    return weight


def walk(rng: random.Random, start: str) -> list[str]:
    """A weighted random walk on :data:`API_GRAPH` from ``start``: the tools it visits, in order."""
    return API_GRAPH.walk(rng, start, weight=_step_weight, stop=lambda tool: STOP_PROBABILITY.get(tool, 0.0))


def _family(path: list[str]) -> str:
    return CATALOGUE if path[0] == CATALOGUE else path[-1]


def _draw_intent(ctx: Context, identify: str, need: Need, tries: int = 12) -> Intent | None:
    """An intent reached by a walk from ``identify`` (or the catalogue), resampling dead-end walks."""

    def family(need: Need) -> str:
        start = CATALOGUE if need is None and ctx.rng.random() < CATALOGUE_START else identify
        return _family(walk(ctx.rng, start))

    return MIX.draw(ctx, need, family, tries)


# --- tasks --------------------------------------------------------------------------------------


def _identity(ctx: Context) -> Identity:
    user = ctx.user
    first, last = user["name"]["first_name"], user["name"]["last_name"]
    if ctx.rng.random() < 0.5:
        known = {"email": user["email"]}
        who = f"You are {first} {last}, and your email address is {user['email']}."
        return Identity(Action(name="find_user_id_by_email", arguments=known), known, who)
    known = {"first_name": first, "last_name": last, "zip": user["address"]["zip"]}
    who = f"You are {first} {last}, and you live in {user['address']['city']}, zip code {known['zip']}."
    return Identity(Action(name="find_user_id_by_name_zip", arguments=known), known, who)


def build_task(
    database: Database, rng: random.Random, user_id: str, twist: TwistKind | None = None
) -> Task | None:
    """One task for ``user_id`` (its id and meta are completed by the caller), or None."""
    ctx = Context.start(DOMAIN, database, rng, user_id, subject_key="order_id")
    identity = _identity(ctx)
    if not ctx.identify(identity):
        return None
    plan = MIX.plan(rng, twist)
    return ctx.build(identity, plan, lambda need: _draw_intent(ctx, identity.action.name, need), MIX.late)


# --- sampling -----------------------------------------------------------------------------------


SAMPLER = DomainSampler("retail", SPLITS, build_task)
sample_tasks = SAMPLER.sample
main = SAMPLER.main


if __name__ == "__main__":
    raise SystemExit(main())
