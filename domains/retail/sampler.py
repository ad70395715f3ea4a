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

import argparse
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from apigen_gym.database import Database, Record, StateView
from apigen_gym.domain import load_domain
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
from apigen_gym.domains.retail.tools import TOOLS
from apigen_gym.jsonio import write_jsonl
from apigen_gym.session import Session, replay
from apigen_gym.task import Action, Goal, Request, Task
from apigen_gym.tools import ERROR_PREFIX

HOME = Path(__file__).parent
CATALOGUE = "list_all_product_types"


@dataclass(frozen=True)
class SplitSpec:
    """Default size and seed of a shipped split, and which user buckets (of ten) it draws from."""

    n: int
    seed: int
    buckets: tuple[int, ...]


SPLITS: dict[str, SplitSpec] = {
    "test": SplitSpec(n=115, seed=20240611, buckets=(0, 1, 2)),
    "dev": SplitSpec(n=20, seed=31, buckets=(3,)),
    "train": SplitSpec(n=300, seed=7, buckets=(4, 5, 6, 7, 8, 9)),
}
"""Splits draw from disjoint user pools, so no train task can equal a test task."""

# --- words --------------------------------------------------------------------------------------

PERSONAS = (
    "You are polite and patient, and you keep your answers short.",
    "You are in a hurry and want this sorted out quickly.",
    "You are careful with money and like to hear amounts spelled out.",
    "You are friendly and chatty, but you stay on topic.",
    "You are a private person and share only what the agent asks for.",
    "You are direct and a little impatient.",
    "You are new to online shopping and unsure about some of the terms.",
    "You are methodical and like to handle one thing at a time.",
    "You are cheerful and thank the agent often.",
    "You are skeptical and want the agent to explain what it is doing.",
)
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
THEN = ("Then", "After that,", "Next,")
ACCEPT_REFUSAL = "If the agent says this is not possible, you accept it and do not insist."


def _join(parts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _options(options: dict[str, str]) -> str:
    return _join([f"{key} {value}" for key, value in options.items()])


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _address_text(address: dict[str, str]) -> str:
    line = ", ".join(p for p in (address["address1"], address["address2"]) if p)
    return f"{line}, {address['city']}, {address['state']} {address['zip']}, {address['country']}"


def _method_name(method: Record) -> str:
    """How a user names a payment method: by kind, with brand and last digits for cards."""
    if method["source"] == "credit_card":
        return f"{method['brand'].title()} card ending in {method['last_four']}"
    source = str(method["source"])
    return {"gift_card": "gift card", "paypal": "PayPal account"}.get(source, source)


def _money(amount: float) -> str:
    return str(round(amount, 2))


# --- context ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """One request of a task: what the user says, the gold reads and writes, the outputs."""

    kind: str
    subject: str
    request: str
    goal: str
    reads: tuple[Action, ...]
    writes: tuple[Action, ...] = ()
    outputs: tuple[str, ...] = ()
    condition: str | None = None
    refuse: str | None = None
    attempt: Action | None = None
    """For a refusal: the forbidden call, checked to be rejected by the tool."""


@dataclass
class Context:
    """The state a task is being built on: the user, the gold actions so far, their effects."""

    rng: random.Random
    session: Session
    user_id: str
    actions: list[Action] = field(default_factory=list)
    writes: dict[str, list[str]] = field(default_factory=dict)
    mentioned: set[str] = field(default_factory=set)

    @property
    def view(self) -> StateView:
        return self.session.fork

    @property
    def user(self) -> Record:
        return self.view.get("users", self.user_id)  # type: ignore[no-any-return]

    def orders(self, *statuses: str) -> list[Record]:
        found = (self.view.get("orders", order_id) for order_id in self.user["orders"])
        return [o for o in found if o is not None and o["status"] in statuses]

    def may_write(self, order_id: str, tool: str) -> bool:
        """Whether ``tool`` may change ``order_id`` after this task's earlier writes to it."""
        earlier = self.writes.get(order_id, [])
        return order_id not in self.mentioned and tool not in earlier and API_GRAPH.allows([*earlier, tool])

    def fresh(self, subject: str) -> bool:
        """Whether no earlier intent of this task is about ``subject``."""
        return subject not in self.mentioned and subject not in self.writes

    def pick(self, items: Sequence[Any]) -> Any:
        return self.rng.choice(items) if items else None

    def methods(self) -> list[Record]:
        """The user's payment methods that the user can name unambiguously."""
        methods = list(self.user["payment_methods"].values())
        names = [_method_name(m) for m in methods]
        return [m for m, name in zip(methods, names) if names.count(name) == 1]

    def gift_cards(self) -> list[Record]:
        return [m for m in self.methods() if m["source"] == "gift_card"]

    def rejected(self, attempt: Action) -> bool:
        """Whether the tool rejects ``attempt`` in the current state (which is left unchanged)."""
        fork = self.session.fork
        before = fork.snapshot()
        output = TOOLS.execute(fork, attempt.name, attempt.arguments).output
        fork.restore(before)
        return output.startswith(ERROR_PREFIX)

    def record(self, intent: Intent) -> None:
        for write in intent.writes:
            subject = str(write.arguments.get("order_id", self.user_id))
            self.writes.setdefault(subject, []).append(write.name)
        if not intent.writes:
            self.mentioned.add(intent.subject)


def _read(name: str, **arguments: Any) -> Action:
    return Action(name=name, arguments=arguments)


def _user_read(ctx: Context) -> Action:
    return _read("get_user_details", user_id=ctx.user_id)


@dataclass(frozen=True)
class OrderRef:
    """How the user points at an order, and the reads the agent needs to find it."""

    name: str
    reads: tuple[Action, ...]

    @property
    def mine(self) -> str:
        return f"my {self.name}"

    @property
    def yours(self) -> str:
        return f"your {self.name}"


def _order_ref(ctx: Context, order: Record) -> OrderRef:
    """By id, or (sometimes) by an item that no other order of the user contains."""
    order_id = order["order_id"]
    reads = (_user_read(ctx), _read("get_order_details", order_id=order_id))
    orders = [ctx.view.get("orders", o) for o in ctx.user["orders"]]
    names = [{i["name"] for i in o["items"]} for o in orders if o is not None]
    unique = sorted(n for n in {i["name"] for i in order["items"]} if sum(n in s for s in names) == 1)
    if not unique or ctx.rng.random() < 0.7:
        return OrderRef(f"order {order_id}", reads)
    earlier = ctx.user["orders"][: ctx.user["orders"].index(order_id) + 1]
    scans = tuple(_read("get_order_details", order_id=o) for o in earlier)
    return OrderRef(f"order with the {ctx.pick(unique).lower()}", (_user_read(ctx), *scans))


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
    return _join([f"{_item_name(order, s.item)} for the one with {_options(s.changed)}" for s in swaps])


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
    ref = _order_ref(ctx, order)
    products = tuple(_read("get_product_details", product_id=s.item["product_id"]) for s in swaps)
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
        return _money(prices[0]), ()
    expression = " + ".join(str(p) for p in prices)
    return TOOLS.execute(ctx.session.fork, "calculate", {"expression": expression}).output, (
        _read("calculate", expression=expression),
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
    names = _join([_item_name(order, i) for i in items])
    wants_total = ctx.rng.random() < 0.4
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
        f"I received {{ref}} and I'd like to exchange {names} for {_a(other)}.",
        f"exchange {names} from {{ref}} for {_a(other)}",
        "an exchange can only swap an item for another option of the same product.",
    )


# --- information --------------------------------------------------------------------------------


def _info(
    ctx: Context, kind: str, subject: str, ask: str, want: str, reads: tuple[Action, ...], out: str
) -> Intent:
    return Intent(
        kind=kind,
        subject=subject,
        request=ask,
        goal=want,
        reads=reads,
        outputs=(out,),
        condition="If the agent gives you a rough figure, you ask for the exact one.",
    )


def _order_total(ctx: Context) -> Intent | None:
    orders = [o for o in ctx.orders("pending", "processed", "delivered") if len(o["payment_history"]) == 1]
    order = ctx.pick([o for o in orders if ctx.fresh(o["order_id"])])
    if order is None:
        return None
    ref = _order_ref(ctx, order)
    amount = _money(order["payment_history"][0]["amount"])
    return _info(
        ctx,
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
    return _info(
        ctx,
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
    return _info(
        ctx,
        "info_item_options",
        item["product_id"],
        f"How many options of the {name} from {ref.mine} are available right now?",
        f"know how many options of the {name} from {ref.yours} are available right now",
        (*ref.reads, _read("get_product_details", product_id=item["product_id"])),
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
    names = _join([_item_name(order, i) for i in items])
    return _info(
        ctx,
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
    return (_read(CATALOGUE), _read("get_product_details", product_id=product["product_id"]))


def _product_options(ctx: Context) -> Intent | None:
    product = _catalogue_product(ctx)
    if product is None:
        return None
    name = product["name"].lower()
    return _info(
        ctx,
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
    return _info(
        ctx,
        "info_variant_price",
        product["product_id"],
        f"How much does the {what} cost?",
        f"know the price of the {what}",
        _catalogue_reads(product),
        _money(variant["price"]),
    )


def _cheapest(ctx: Context) -> Intent | None:
    product = _catalogue_product(ctx)
    if product is None:
        return None
    name = product["name"].lower()
    return _info(
        ctx,
        "info_cheapest",
        product["product_id"],
        f"What is the price of the cheapest {name} you have available?",
        f"know the price of the cheapest available {name}",
        _catalogue_reads(product),
        _money(min(v["price"] for v in _available(product))),
    )


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
REFUSALS: dict[str, Builder] = {
    CANCEL: _refuse_cancel,
    MODIFY_ADDRESS: _refuse_modify_address,
    MODIFY_PAYMENT: _refuse_modify_payment,
    MODIFY_ITEMS: _refuse_modify_items,
    RETURN: _refuse_return,
    EXCHANGE: _refuse_exchange_other_product,
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


Need = Literal["write", "refuse"] | None
"""What a planned intent must be: a write, a refusal, or anything a walk leads to."""


def _builder(rng: random.Random, family: str, need: Need) -> Builder | None:
    refusal = REFUSALS.get(family)
    if need == "refuse" or (need is None and refusal is not None and rng.random() < REFUSAL_SHARE):
        return refusal
    builders = FAMILIES.get(family, ())
    return rng.choice(builders) if builders else None


def _satisfies(intent: Intent | None, need: Need) -> bool:
    if intent is None:
        return False
    return need is None or bool(intent.writes if need == "write" else intent.refuse)


def _draw_intent(ctx: Context, identify: str, need: Need, tries: int = 12) -> Intent | None:
    """An intent reached by a walk from ``identify``, resampling walks that lead nowhere valid."""
    for _ in range(tries):
        start = CATALOGUE if need is None and ctx.rng.random() < CATALOGUE_START else identify
        builder = _builder(ctx.rng, _family(walk(ctx.rng, start)), need)
        intent = None if builder is None else builder(ctx)
        if _satisfies(intent, need):
            return intent
    return None


def _plan(rng: random.Random) -> list[Need]:
    """What each intent of a task must be: some tasks chain two writes, some open with a refusal."""
    roll = rng.random()
    free: list[Need] = [None]
    if roll < MULTI_WRITE_SHARE:
        return ["write", "write", *free * rng.choice((0, 1))]
    if roll < MULTI_WRITE_SHARE + REFUSAL_TASK_SHARE:
        return ["refuse", *free * rng.choice((0, 1))]
    return free * rng.choices((1, 2, 3), (0.45, 0.4, 0.15))[0]


# --- tasks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    action: Action
    known: dict[str, str]
    who: str


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


def _execute(ctx: Context, actions: Sequence[Action]) -> list[int] | None:
    """Run the actions not already played (reads are not repeated); their indices, or None on error."""
    indices = []
    for action in actions:
        is_write = action.name in WRITES
        if not is_write and action in ctx.actions:
            continue
        if not ctx.session.call(action.name, action.arguments).ok:
            return None
        indices.append(len(ctx.actions))
        ctx.actions.append(action)
    return indices


def _instruction(ctx: Context, identity: Identity, intents: list[Intent]) -> str:
    sentences = [identity.who]
    for number, intent in enumerate(intents):
        lead = "You want to" if number == 0 else f"{ctx.rng.choice(THEN)} you want to"
        if number == len(intents) - 1 and number > 1:
            lead = "Finally, you want to"
        sentences.append(f"{lead} {intent.goal}.")
    sentences += list(dict.fromkeys(i.condition for i in intents if i.condition))
    sentences.append(ctx.rng.choice(PERSONAS))
    return " ".join(sentences)


def _build(database: Database, rng: random.Random, user_id: str) -> Task | None:
    """One task for ``user_id`` (its id and meta are completed by the caller), or None."""
    ctx = Context(rng, Session(TOOLS, database), user_id)
    identity = _identity(ctx)
    if ctx.session.call(identity.action.name, identity.action.arguments).output != user_id:
        return None
    ctx.actions.append(identity.action)
    intents: list[Intent] = []
    requests: list[Request] = []
    for number, need in enumerate(_plan(rng)):
        intent = _draw_intent(ctx, identity.action.name, need)
        indices = None if intent is None else _execute(ctx, (*intent.reads, *intent.writes))
        if intent is None or indices is None:
            return None
        ctx.record(intent)
        intents.append(intent)
        served = [0, *indices] if number == 0 else indices
        requests.append(Request(text=intent.request, actions=served, refuse=intent.refuse))
    return Task(
        id="",
        user_id=user_id,
        instruction=_instruction(ctx, identity, intents),
        goal=Goal(known=identity.known, requests=requests),
        actions=list(ctx.actions),
        outputs=[o for i in intents for o in i.outputs],
        meta={"intents": [i.kind for i in intents], "writes": sum(len(i.writes) for i in intents)},
    )


# --- validation ---------------------------------------------------------------------------------


def problems(task: Task, database: Database) -> list[str]:
    """Why ``task`` is not a valid retail task (empty when it is): replay, writes, policy, grounding."""
    session = replay(TOOLS, database, task.actions)
    found = [f"action {s.index} ({s.name}) failed: {s.output}" for s in session.trace.steps if not s.ok]
    writes = [a for a in task.actions if a.name in WRITES]
    if len(writes) != task.meta.get("writes"):
        found.append(f"{len(writes)} writes, but the intents make {task.meta.get('writes')}")
    goal = task.effective_goal()
    for request in goal.requests:
        if request.refuse and any(task.actions[i].name in WRITES for i in request.actions):
            found.append(f"refused request makes a write: {request.text}")
    found += [f"policy: {v.rule}: {v.message}" for v in load_domain("retail").policy.check(session.trace)]
    found += [f"output {o!r} is empty or has a comma" for o in task.outputs if not o or "," in o]
    found += _ungrounded(task.actions)
    return found


def _ungrounded(actions: Sequence[Action]) -> list[str]:
    """Actions whose tool no earlier action feeds in the API graph (roots excepted)."""
    roots = set(API_GRAPH.roots())
    feeds = {(e.source, e.target) for e in API_GRAPH.edges}
    out = []
    for index, action in enumerate(actions):
        earlier = {a.name for a in actions[:index]}
        if action.name not in roots and not any((s, action.name) in feeds for s in earlier):
            out.append(f"action {index} ({action.name}) is not fed by any earlier action")
    return out


# --- sampling -----------------------------------------------------------------------------------


def user_pool(database: Database, split: str) -> list[str]:
    """The users a split draws from: a fixed hash bucket per split (all users for unknown splits)."""
    users = sorted(database.table("users"))
    spec = SPLITS.get(split)
    return users if spec is None else [u for u in users if _bucket(u) in spec.buckets]


def _bucket(user_id: str) -> int:
    return int(hashlib.sha256(user_id.encode()).hexdigest(), 16) % 10


def _signature(task: Task) -> str:
    return json.dumps([task.user_id, [a.model_dump() for a in task.actions], task.outputs], sort_keys=True)


def sample_tasks(database: Database, n: int, seed: int, split: str = "test") -> list[Task]:
    """``n`` validated, distinct tasks for ``split``, the same for the same database, seed and split."""
    rng = random.Random(f"retail/{split}/{seed}")
    pool = user_pool(database, split)
    tasks: list[Task] = []
    seen: set[str] = set()
    for _ in range(n * 50):
        if len(tasks) == n:
            break
        task = _build(database, rng, rng.choice(pool))
        if task is None or _signature(task) in seen or problems(task, database):
            continue
        seen.add(_signature(task))
        meta = {"split": split, "source": "sampler", "seed": seed, **task.meta}
        tasks.append(task.model_copy(update={"id": f"retail-{split}-{len(tasks):03d}", "meta": meta}))
    if len(tasks) < n:
        raise RuntimeError(f"could only build {len(tasks)} of {n} tasks from {len(pool)} users")
    return tasks


def task_rows(tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """Tasks as JSON rows (``None`` fields left out); ``Task.model_validate`` reads them back."""
    return [t.model_dump(mode="json", exclude_none=True) for t in tasks]


def default_path(split: str) -> Path:
    return HOME / "tasks" / f"{split}.jsonl"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apigen_gym.domains.retail.sampler",
        description="Sample validated retail tasks by random walks on the API graph.",
    )
    parser.add_argument("--split", default="test", help="split name (default: test)")
    parser.add_argument("--n", type=int, help="number of tasks (default: the split's shipped size)")
    parser.add_argument("--seed", type=int, help="random seed (default: the split's shipped seed)")
    parser.add_argument("--out", type=Path, help="output JSONL (default: domains/retail/tasks/<split>.jsonl)")
    parser.add_argument("--data-dir", type=Path, help="a τ-bench-layout data folder (default: shipped data)")
    args = parser.parse_args(argv)
    spec = SPLITS.get(args.split, SplitSpec(n=100, seed=0, buckets=()))
    database = load_domain("retail").database(args.data_dir)
    tasks = sample_tasks(
        database, args.n or spec.n, spec.seed if args.seed is None else args.seed, args.split
    )
    out = args.out or default_path(args.split)
    write_jsonl(out, task_rows(tasks))
    print(f"wrote {len(tasks)} {args.split} tasks to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
