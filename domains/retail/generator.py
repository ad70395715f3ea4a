"""Seeded generator of the retail database: τ-bench's table shapes, the project's own content.

``generate(seed, scale)`` returns ``{"users", "orders", "products"}`` tables keyed by id, with the record
layout of τ-bench's retail database (key order, id formats, field types) and every order status the
retail tools can produce. Only version-stable ``random.Random`` methods are used, so a seed gives the same
bytes on every Python version. ``python -m apigen_gym.domains.retail.generator`` writes the shipped files.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from apigen_gym.kit.db_generator import Draws, copies, generator_main, scaled

Record = dict[str, Any]
Table = dict[str, Record]

DEFAULT_SEED = 20240615
DEFAULT_OUT = Path(__file__).parent / "db"
BASE_USERS = 500
BASE_ORDERS = 1000

# fmt: off
FIRST_NAMES = (
    "Alice", "Arjun", "Beatriz", "Bruno", "Caleb", "Camila", "Diana", "Dmitri", "Elena", "Emil",
    "Farah", "Freya", "Gabriel", "Grace", "Hana", "Hugo", "Ibrahim", "Ingrid", "Jonah", "Julia",
    "Kenji", "Kofi", "Leila", "Lucia", "Marco", "Mateo", "Nadia", "Nora", "Oscar", "Owen",
    "Paula", "Priya", "Quinn", "Rohan", "Rosa", "Samuel", "Sara", "Tara", "Tomas", "Uma",
    "Umar", "Valeria", "Victor", "Wei", "Willa", "Ximena", "Yosef", "Zoe",
)
LAST_NAMES = (
    "Abbott", "Alvarez", "Baker", "Bianchi", "Carter", "Castillo", "Dimitrov", "Dubois", "Eriksen",
    "Evans", "Fernandes", "Fischer", "Greene", "Gupta", "Haddad", "Hoffman", "Ibarra", "Iyer",
    "Jensen", "Jovanovic", "Kaur", "Kowalski", "Larsen", "Lindqvist", "Mendoza", "Mwangi", "Nakamura",
    "Novak", "Okafor", "Ortiz", "Park", "Petrov", "Quintero", "Ramirez", "Reyes", "Sato", "Schmidt",
    "Tanaka", "Torres", "Ueda", "Umarov", "Vargas", "Volkov", "Walsh", "Wright", "Xu", "Yamada", "Zhou",
)
STREETS = (
    "Aspen Circle", "Bayview Road", "Beacon Street", "Birch Terrace", "Canal Street", "Clearwater Drive",
    "Copper Ridge Road", "Cottonwood Drive", "Foxglove Drive", "Granite Avenue", "Harbor Street",
    "Harvest Lane", "Heritage Way", "Holly Court", "Ivy Terrace", "Juniper Court", "Lantern Way",
    "Magnolia Boulevard", "Market Street", "Meadowbrook Lane", "Old Mill Road", "Orchard Way",
    "Prospect Avenue", "Quarry Road", "Redwood Parkway", "Sparrow Lane", "Stonebridge Road",
    "Sycamore Place", "Timber Trail", "Windmill Lane",
)
UNIT_KINDS = ("Suite", "Apt", "Unit")
# (city, state, first three digits of its zip codes)
CITIES = (
    ("Albuquerque", "NM", "871"), ("Anchorage", "AK", "995"), ("Atlanta", "GA", "303"),
    ("Baltimore", "MD", "212"), ("Boise", "ID", "837"), ("Boston", "MA", "021"),
    ("Buffalo", "NY", "142"), ("Charleston", "SC", "294"), ("Cleveland", "OH", "441"),
    ("Des Moines", "IA", "503"), ("Detroit", "MI", "482"), ("Hartford", "CT", "061"),
    ("Honolulu", "HI", "968"), ("Kansas City", "MO", "641"), ("Las Vegas", "NV", "891"),
    ("Louisville", "KY", "402"), ("Madison", "WI", "537"), ("Memphis", "TN", "381"),
    ("Miami", "FL", "331"), ("Milwaukee", "WI", "532"), ("Minneapolis", "MN", "554"),
    ("Nashville", "TN", "372"), ("New Orleans", "LA", "701"), ("Oakland", "CA", "946"),
    ("Omaha", "NE", "681"), ("Orlando", "FL", "328"), ("Pittsburgh", "PA", "152"),
    ("Portland", "OR", "972"), ("Providence", "RI", "029"), ("Raleigh", "NC", "276"),
    ("Richmond", "VA", "232"), ("Sacramento", "CA", "958"), ("Salt Lake City", "UT", "841"),
    ("Spokane", "WA", "992"), ("Tampa", "FL", "336"), ("Tucson", "AZ", "857"), ("Tulsa", "OK", "741"),
)
# fmt: on
COUNTRY = "USA"
PAYMENT_KINDS = ("credit_card", "gift_card", "paypal")
CARD_BRANDS = ("visa", "visa", "mastercard", "mastercard", "amex", "discover")
WALLET_SIZES = (1, 1, 1, 1, 1, 1, 2, 2, 2, 3)  # 60 % one method, 30 % two, 10 % three

AVAILABLE_SHARE = 0.62  # share of variants in stock (at least MIN_AVAILABLE per product)
MIN_AVAILABLE = 2
VARIANT_SPREAD = 0.12  # variants cost the product's base price ± 12 %
SAME_ADDRESS_SHARE = 0.8  # orders shipped to the user's current address
FREQUENT_BUYERS = 0.2  # share of users who place many orders ...
FREQUENT_PICK = 0.35  # ... and the share of the extra orders that go to them
GIFT_CARD_SLACK = (1.0, 250.0)  # balance left on a gift card above its largest charge

# Share of orders in each status; "pending" takes the rest (about 39 %).
STATUS_SHARES = (
    ("delivered", 0.345),
    ("processed", 0.095),
    ("cancelled", 0.095),
    ("return requested", 0.025),
    ("exchange requested", 0.025),
    ("pending (item modified)", 0.025),
)
SWAP_STATUSES = ("exchange requested", "pending (item modified)")


class ProductSpec(NamedTuple):
    """One product type of the catalogue: its price range and option values."""

    name: str
    low: float
    high: float
    options: dict[str, tuple[str, ...]]


# fmt: off
CATALOGUE = (
    ProductSpec("Rain Jacket", 59, 149, {
        "color": ("black", "navy", "olive", "red", "yellow"), "size": ("S", "M", "L", "XL"),
        "hood": ("packable", "fixed")}),
    ProductSpec("Hoodie", 35, 79, {
        "color": ("grey", "black", "navy", "green", "burgundy"), "size": ("XS", "S", "M", "L", "XL", "XXL"),
        "fit": ("regular", "oversized")}),
    ProductSpec("Jeans", 40, 110, {
        "waist": ("28", "30", "32", "34", "36", "38"), "length": ("30", "32", "34"),
        "fit": ("slim", "straight", "relaxed")}),
    ProductSpec("Wool Scarf", 19, 59, {
        "color": ("charcoal", "camel", "cream", "plaid red", "forest green"), "length": ("150cm", "180cm"),
        "weave": ("knit", "woven")}),
    ProductSpec("Winter Gloves", 15, 49, {
        "size": ("S", "M", "L", "XL"), "material": ("wool", "leather", "fleece"),
        "touchscreen": ("yes", "no")}),
    ProductSpec("Sandals", 25, 89, {
        "size": ("6", "7", "8", "9", "10", "11", "12"), "color": ("brown", "black", "tan"),
        "strap": ("buckle", "hook and loop")}),
    ProductSpec("Swimsuit", 20, 70, {
        "size": ("XS", "S", "M", "L", "XL"), "color": ("navy", "coral", "teal", "black"),
        "style": ("one-piece", "two-piece", "trunks")}),
    ProductSpec("Tote Bag", 15, 65, {
        "material": ("canvas", "leather", "recycled nylon"),
        "color": ("natural", "black", "olive", "mustard"),
        "size": ("small", "large")}),
    ProductSpec("Wallet", 20, 120, {
        "material": ("leather", "vegan leather", "canvas"), "style": ("bifold", "trifold", "card holder"),
        "color": ("brown", "black", "tan")}),
    ProductSpec("Blender", 39, 249, {
        "capacity": ("1L", "1.5L", "2L"), "power": ("600W", "1000W", "1500W"),
        "color": ("black", "white", "red")}),
    ProductSpec("Air Fryer", 59, 199, {
        "capacity": ("3.5qt", "5qt", "6.5qt", "8qt"), "color": ("black", "white", "sage"),
        "controls": ("digital", "dial")}),
    ProductSpec("Rice Cooker", 29, 179, {
        "capacity": ("3 cups", "5 cups", "10 cups"), "type": ("basic", "fuzzy logic", "induction"),
        "color": ("white", "black", "stainless")}),
    ProductSpec("Toaster", 25, 129, {
        "slots": ("2", "4"), "color": ("black", "cream", "red", "stainless", "sage"),
        "controls": ("dial", "digital")}),
    ProductSpec("Stand Mixer", 149, 549, {
        "bowl size": ("4.5qt", "5qt", "6qt"), "color": ("black", "white", "red", "blue", "silver"),
        "motor": ("325W", "500W")}),
    ProductSpec("Cast Iron Skillet", 19, 89, {
        "diameter": ("8 inch", "10 inch", "12 inch", "15 inch"), "finish": ("pre-seasoned", "enameled"),
        "handle": ("single", "dual"), "lid": ("yes", "no")}),
    ProductSpec("Chef Knife", 25, 220, {
        "blade length": ("6 inch", "8 inch", "10 inch"), "steel": ("German", "Japanese", "Damascus"),
        "handle": ("wood", "resin", "steel")}),
    ProductSpec("Dinnerware Set", 45, 199, {
        "pieces": ("12", "16", "24"), "material": ("stoneware", "porcelain", "melamine"),
        "color": ("white", "speckled grey", "blue")}),
    ProductSpec("Bath Towel Set", 25, 99, {
        "pieces": ("4", "6", "8"), "color": ("white", "grey", "navy", "sage"),
        "material": ("cotton", "bamboo")}),
    ProductSpec("Bed Sheets", 35, 179, {
        "size": ("twin", "full", "queen", "king"),
        "material": ("cotton percale", "cotton sateen", "linen", "microfiber"),
        "color": ("white", "grey", "blue")}),
    ProductSpec("Pillow", 19, 89, {
        "fill": ("down", "down alternative", "memory foam", "latex"), "firmness": ("soft", "medium", "firm"),
        "size": ("standard", "king")}),
    ProductSpec("Floor Lamp", 39, 199, {
        "style": ("arc", "tripod", "torchiere"), "finish": ("black", "brass", "white", "walnut"),
        "bulb": ("LED included", "no bulb")}),
    ProductSpec("Ceiling Fan", 79, 399, {
        "blade span": ("42 inch", "52 inch", "60 inch"),
        "finish": ("white", "matte black", "bronze", "brushed nickel"), "light": ("yes", "no")}),
    ProductSpec("Standing Desk", 199, 799, {
        "width": ("48 inch", "55 inch", "63 inch"), "top": ("oak", "walnut", "white", "black"),
        "frame": ("single motor", "dual motor")}),
    ProductSpec("Computer Monitor", 129, 899, {
        "size": ("24 inch", "27 inch", "32 inch"), "resolution": ("1080p", "1440p", "4K"),
        "refresh rate": ("60Hz", "144Hz"), "panel": ("IPS", "VA")}),
    ProductSpec("Webcam", 29, 199, {
        "resolution": ("720p", "1080p", "4K"), "field of view": ("narrow", "standard", "wide"),
        "microphone": ("mono", "stereo"), "color": ("black", "white")}),
    ProductSpec("USB Microphone", 39, 249, {
        "pattern": ("cardioid", "omnidirectional", "multi-pattern"), "color": ("black", "white", "silver"),
        "stand": ("desk", "boom arm"), "connector": ("USB-A", "USB-C")}),
    ProductSpec("Inkjet Printer", 59, 349, {
        "function": ("print only", "all-in-one"), "connectivity": ("USB", "Wi-Fi", "Wi-Fi and Ethernet"),
        "color": ("black", "white"), "duplex": ("yes", "no")}),
    ProductSpec("Wi-Fi Router", 49, 399, {
        "standard": ("Wi-Fi 5", "Wi-Fi 6", "Wi-Fi 6E", "Wi-Fi 7"), "bands": ("dual-band", "tri-band"),
        "pack": ("1-pack", "2-pack", "3-pack")}),
    ProductSpec("Smart Plug", 9, 49, {
        "pack": ("1-pack", "2-pack", "4-pack"), "protocol": ("Wi-Fi", "Zigbee", "Matter"),
        "energy monitoring": ("yes", "no"), "color": ("white", "black")}),
    ProductSpec("Robot Vacuum", 149, 899, {
        "navigation": ("random", "gyroscope", "lidar"), "mopping": ("yes", "no"),
        "self-emptying": ("yes", "no"), "color": ("black", "white")}),
    ProductSpec("Camera Drone", 199, 1499, {
        "camera": ("2.7K", "4K", "6K"), "battery": ("standard", "extended"),
        "controller": ("basic", "screen"), "color": ("grey", "white")}),
    ProductSpec("Turntable", 99, 599, {
        "drive": ("belt", "direct"), "speeds": ("33/45", "33/45/78"), "finish": ("black", "walnut", "white"),
        "bluetooth": ("yes", "no")}),
    ProductSpec("Soundbar", 99, 899, {
        "channels": ("2.0", "2.1", "3.1", "5.1"), "subwoofer": ("none", "wired", "wireless"),
        "color": ("black", "white")}),
    ProductSpec("Home Projector", 149, 1299, {
        "resolution": ("720p", "1080p", "4K"),
        "brightness": ("2000 lumens", "3000 lumens", "4000 lumens", "5000 lumens"),
        "throw": ("standard", "short throw")}),
    ProductSpec("Fitness Tracker", 29, 199, {
        "band color": ("black", "blue", "pink", "green", "grey"), "band size": ("small", "large"),
        "gps": ("built-in", "connected")}),
    ProductSpec("Camping Tent", 79, 599, {
        "capacity": ("1-person", "2-person", "4-person", "6-person"), "season": ("3-season", "4-season"),
        "color": ("green", "orange", "grey")}),
    ProductSpec("Sleeping Bag", 39, 299, {
        "temperature rating": ("20F", "35F", "50F"), "fill": ("down", "synthetic"),
        "length": ("regular", "long"), "shape": ("mummy", "rectangular")}),
    ProductSpec("Camping Stove", 29, 179, {
        "fuel": ("propane", "butane", "isobutane", "multi-fuel"), "burners": ("single", "double"),
        "ignition": ("manual", "piezo"), "windscreen": ("yes", "no")}),
    ProductSpec("Fishing Rod", 29, 249, {
        "length": ("6 ft", "7 ft", "8 ft"), "power": ("light", "medium", "heavy"),
        "material": ("graphite", "fiberglass"), "pieces": ("1-piece", "2-piece")}),
    ProductSpec("Tennis Racket", 49, 279, {
        "head size": ("98 sq in", "100 sq in", "105 sq in"), "weight": ("270g", "285g", "300g", "315g"),
        "grip size": ("2", "3", "4")}),
    ProductSpec("Basketball", 15, 89, {
        "size": ("5", "6", "7"), "surface": ("indoor", "outdoor", "indoor/outdoor"),
        "material": ("rubber", "composite", "leather")}),
    ProductSpec("Resistance Band Set", 15, 69, {
        "pieces": ("3-piece", "5-piece", "7-piece", "11-piece"), "type": ("loop", "tube", "therapy"),
        "material": ("latex", "fabric")}),
    ProductSpec("Board Game", 19, 89, {
        "genre": ("strategy", "party", "cooperative", "family"), "players": ("2-4", "2-6", "3-8"),
        "edition": ("standard", "deluxe")}),
    ProductSpec("Watercolor Paint Set", 12, 129, {
        "colors": ("12", "24", "36", "48"), "grade": ("student", "artist"), "format": ("pans", "tubes"),
        "palette": ("plastic", "metal")}),
    ProductSpec("Acoustic Guitar", 129, 1199, {
        "body": ("dreadnought", "concert", "parlor"), "top": ("spruce", "cedar", "mahogany"),
        "finish": ("natural", "sunburst", "black"), "electronics": ("yes", "no")}),
    ProductSpec("Plant Pot", 9, 89, {
        "diameter": ("4 inch", "6 inch", "8 inch", "12 inch"),
        "material": ("terracotta", "ceramic", "concrete"), "drainage": ("yes", "no")}),
    ProductSpec("Electric Scooter", 299, 1199, {
        "range": ("15 miles", "25 miles", "40 miles"), "top speed": ("15 mph", "19 mph", "25 mph"),
        "color": ("black", "grey", "white")}),
    ProductSpec("Baby Stroller", 99, 899, {
        "type": ("full-size", "jogging", "travel"), "color": ("black", "grey", "navy", "olive"),
        "seats": ("single", "double")}),
    ProductSpec("Dog Leash", 9, 49, {
        "length": ("4 ft", "6 ft", "10 ft"), "material": ("nylon", "leather", "rope"),
        "color": ("black", "red", "blue", "orange")}),
    ProductSpec("Cat Tree", 39, 249, {
        "height": ("3 ft", "4 ft", "5 ft", "6 ft"), "color": ("beige", "grey", "brown"),
        "platforms": ("2", "3", "4")}),
)
# fmt: on


@dataclass
class _Context(Draws):
    """The random source plus everything that must stay unique across the database."""

    products: Table = field(default_factory=dict)
    people: set[tuple[str, str, str]] = field(default_factory=set)

    def fresh_id(self, digits: int, prefix: str = "") -> str:
        """A new id: ``prefix`` followed by ``digits`` digits (no leading zero)."""
        low, high = 10 ** (digits - 1), 10**digits
        return self.unique(lambda: f"{prefix}{self.rng.randrange(low, high)}")


# --- products ---------------------------------------------------------------------------------------


def _availability(rng: random.Random, count: int) -> list[bool]:
    """In-stock flags for ``count`` variants, at least ``MIN_AVAILABLE`` of them True."""
    flags = [rng.random() < AVAILABLE_SHARE for _ in range(count)]
    for index in rng.sample(range(count), MIN_AVAILABLE):
        flags[index] = True
    return flags


def _new_product(ctx: _Context, spec: ProductSpec) -> Record:
    rng = ctx.rng
    product_id = ctx.fresh_id(10)
    combos = list(itertools.product(*spec.options.values()))
    chosen = rng.sample(combos, min(len(combos), rng.randint(5, 20)))
    base = rng.uniform(spec.low, spec.high)
    variants: Table = {}
    for combo, available in zip(chosen, _availability(rng, len(chosen))):
        item_id = ctx.fresh_id(10)
        variants[item_id] = {
            "item_id": item_id,
            "options": dict(zip(spec.options, combo)),
            "available": available,
            "price": round(rng.uniform(base * (1 - VARIANT_SPREAD), base * (1 + VARIANT_SPREAD)), 2),
        }
    return {"name": spec.name, "product_id": product_id, "variants": variants}


def _new_products(ctx: _Context, copies: int) -> Table:
    """The catalogue, laid out ``copies`` times: the shipped one, then product lines "<name> Series 2", ..."""
    specs = [
        spec if copy == 0 else spec._replace(name=f"{spec.name} Series {copy + 1}")
        for copy in range(copies)
        for spec in CATALOGUE
    ]
    products = (_new_product(ctx, spec) for spec in specs)
    return {product["product_id"]: product for product in products}


# --- users ------------------------------------------------------------------------------------------


def _new_address(rng: random.Random) -> Record:
    city, state, zip_prefix = rng.choice(CITIES)
    return {
        "address1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
        "address2": f"{rng.choice(UNIT_KINDS)} {rng.randint(1, 999)}",
        "city": city,
        "country": COUNTRY,
        "state": state,
        "zip": f"{zip_prefix}{rng.randrange(100):02d}",
    }


def _new_person(ctx: _Context) -> tuple[str, str, Record]:
    """First name, last name and address, with (first, last, zip) not used by anyone else."""
    while True:
        first, last = ctx.rng.choice(FIRST_NAMES), ctx.rng.choice(LAST_NAMES)
        address = _new_address(ctx.rng)
        key = (first, last, address["zip"])
        if key not in ctx.people:
            ctx.people.add(key)
            return first, last, address


def _wallet_kinds(rng: random.Random) -> list[str]:
    """Kinds of a user's payment methods: credit cards may repeat, gift card and PayPal may not."""
    size = rng.choice(WALLET_SIZES)
    kinds: list[str] = []
    while len(kinds) < size:
        kind = rng.choice(PAYMENT_KINDS)
        if kind == "credit_card" or kind not in kinds:
            kinds.append(kind)
    return kinds


def _new_payment_method(ctx: _Context, kind: str) -> Record:
    """A payment method; gift-card balances are filled in once the orders are known."""
    method_id = ctx.fresh_id(7, f"{kind}_")
    if kind == "credit_card":
        brand = ctx.rng.choice(CARD_BRANDS)
        return {
            "source": kind,
            "brand": brand,
            "last_four": f"{ctx.rng.randrange(10000):04d}",
            "id": method_id,
        }
    if kind == "gift_card":
        return {"source": kind, "balance": 0.0, "id": method_id}
    return {"source": kind, "id": method_id}


def _new_user(ctx: _Context) -> tuple[str, Record]:
    first, last, address = _new_person(ctx)
    handle = f"{first.lower()}_{last.lower()}"
    user_id = ctx.unique(lambda: f"{handle}_{ctx.rng.randint(1000, 9999)}")
    email = ctx.unique(lambda: f"{first.lower()}.{last.lower()}{ctx.rng.randint(1000, 9999)}@example.com")
    methods = (_new_payment_method(ctx, kind) for kind in _wallet_kinds(ctx.rng))
    return user_id, {
        "name": {"first_name": first, "last_name": last},
        "address": address,
        "email": email,
        "payment_methods": {method["id"]: method for method in methods},
        "orders": [],
    }


def _new_users(ctx: _Context, count: int) -> Table:
    return dict(_new_user(ctx) for _ in range(count))


# --- orders -----------------------------------------------------------------------------------------


def _status_plan(rng: random.Random, count: int) -> list[str]:
    """Statuses of ``count`` orders in random order, each status present once there is room for all."""
    floor = 1 if count > len(STATUS_SHARES) else 0
    plan = [status for status, share in STATUS_SHARES for _ in range(max(floor, round(count * share)))]
    plan = plan[:count] + ["pending"] * max(0, count - len(plan))
    rng.shuffle(plan)
    return plan


def _order_owners(rng: random.Random, user_ids: Sequence[str], count: int) -> list[str]:
    """Who places each order: everyone once if possible, extra orders partly to a set of frequent buyers."""
    owners = list(user_ids[:count])
    frequent = user_ids[: max(1, round(len(user_ids) * FREQUENT_BUYERS))]
    while len(owners) < count:
        owners.append(rng.choice(frequent if rng.random() < FREQUENT_PICK else user_ids))
    rng.shuffle(owners)
    return owners


def _order_item(product: Record, variant: Record) -> Record:
    return {
        "name": product["name"],
        "product_id": product["product_id"],
        "item_id": variant["item_id"],
        "price": variant["price"],
        "options": dict(variant["options"]),
    }


def _pick_items(ctx: _Context) -> list[Record]:
    """One to five distinct variants (a product may appear twice in different variants)."""
    products = list(ctx.products.values())
    items: list[Record] = []
    count = ctx.rng.randint(1, 5)
    while len(items) < count:
        product = ctx.rng.choice(products)
        variant = ctx.rng.choice(list(product["variants"].values()))
        if all(item["item_id"] != variant["item_id"] for item in items):
            items.append(_order_item(product, variant))
    return items


def _swap_candidates(ctx: _Context, items: list[Record], item: Record) -> list[Record]:
    """Available variants that could replace ``item``: same product, not already in the order."""
    taken = {other["item_id"] for other in items}
    variants = ctx.products[item["product_id"]]["variants"].values()
    return [variant for variant in variants if variant["available"] and variant["item_id"] not in taken]


def _plan_swaps(ctx: _Context, items: list[Record]) -> list[tuple[Record, Record]]:
    """(old item, new variant) pairs for an exchange or an item modification; empty if none is possible."""
    swappable = [item for item in items if _swap_candidates(ctx, items, item)]
    if not swappable:
        return []
    chosen = ctx.rng.sample(swappable, ctx.rng.randint(1, len(swappable)))
    swaps: list[tuple[Record, Record]] = []
    for item in chosen:
        picked = [new["item_id"] for _, new in swaps]
        candidates = [v for v in _swap_candidates(ctx, items, item) if v["item_id"] not in picked]
        if candidates:
            swaps.append((item, ctx.rng.choice(candidates)))
    return swaps


def _price_difference(swaps: list[tuple[Record, Record]]) -> float:
    """New minus old prices, summed and rounded the way τ-bench's tools do it."""
    difference = 0.0
    for old, new in swaps:
        difference += new["price"] - old["price"]
    return round(difference, 2)


def _ship(ctx: _Context, order: Record) -> None:
    """Add the single fulfillment (one tracking id, every item) that shipped orders carry."""
    item_ids = [item["item_id"] for item in order["items"]]
    order["fulfillments"].append({"tracking_id": [ctx.fresh_id(12)], "item_ids": item_ids})


def _user_method(ctx: _Context, user: Record) -> str:
    return ctx.rng.choice(list(user["payment_methods"]))


def _to_processed(ctx: _Context, order: Record, user: Record) -> None:
    _ship(ctx, order)
    order["status"] = "processed"


def _to_delivered(ctx: _Context, order: Record, user: Record) -> None:
    _ship(ctx, order)
    order["status"] = "delivered"


def _to_cancelled(ctx: _Context, order: Record, user: Record) -> None:
    """Like τ-bench's stored cancelled orders: a fulfillment, a refund per payment, no cancel_reason."""
    _ship(ctx, order)
    order["status"] = "cancelled"
    refunds = [{**payment, "transaction_type": "refund"} for payment in order["payment_history"]]
    order["payment_history"].extend(refunds)


def _to_return_requested(ctx: _Context, order: Record, user: Record) -> None:
    """As ``return_delivered_order_items`` leaves it: refund to the original method or a gift card."""
    _to_delivered(ctx, order, user)
    item_ids = [item["item_id"] for item in order["items"]]
    returned = ctx.rng.sample(item_ids, ctx.rng.randint(1, len(item_ids)))
    original = order["payment_history"][0]["payment_method_id"]
    gift_cards = [pid for pid, method in user["payment_methods"].items() if method["source"] == "gift_card"]
    order["status"] = "return requested"
    order["return_items"] = sorted(returned)
    order["return_payment_method_id"] = ctx.rng.choice([original, *(g for g in gift_cards if g != original)])


def _to_exchange_requested(ctx: _Context, order: Record, user: Record) -> None:
    """As ``exchange_delivered_order_items`` leaves it."""
    _to_delivered(ctx, order, user)
    swaps = _plan_swaps(ctx, order["items"])
    order["status"] = "exchange requested"
    order["exchange_items"] = sorted(old["item_id"] for old, _ in swaps)
    order["exchange_new_items"] = sorted(new["item_id"] for _, new in swaps)
    order["exchange_payment_method_id"] = _user_method(ctx, user)
    order["exchange_price_difference"] = _price_difference(swaps)


def _to_item_modified(ctx: _Context, order: Record, user: Record) -> None:
    """As ``modify_pending_order_items`` leaves it: items replaced, the difference paid or refunded."""
    swaps = _plan_swaps(ctx, order["items"])
    difference = _price_difference(swaps)
    for old, new in swaps:
        old.update(item_id=new["item_id"], price=new["price"], options=dict(new["options"]))
    order["payment_history"].append(
        {
            "transaction_type": "payment" if difference > 0 else "refund",
            "amount": abs(difference),
            "payment_method_id": _user_method(ctx, user),
        }
    )
    order["status"] = "pending (item modified)"


def _stay_pending(ctx: _Context, order: Record, user: Record) -> None:
    """Pending orders are left as placed."""


STATUS_EFFECTS: dict[str, Callable[[_Context, Record, Record], None]] = {
    "pending": _stay_pending,
    "processed": _to_processed,
    "delivered": _to_delivered,
    "cancelled": _to_cancelled,
    "return requested": _to_return_requested,
    "exchange requested": _to_exchange_requested,
    "pending (item modified)": _to_item_modified,
}


def _items_for(ctx: _Context, status: str) -> list[Record]:
    """Items of a new order; orders headed for an exchange or a modification get a swappable item."""
    items = _pick_items(ctx)
    while status in SWAP_STATUSES and not any(_swap_candidates(ctx, items, item) for item in items):
        items = _pick_items(ctx)
    return items


def _new_order(ctx: _Context, user_id: str, user: Record, status: str) -> Record:
    """Place a pending order for ``user``, then take it to ``status`` the way the retail tools would."""
    items = _items_for(ctx, status)
    same_address = ctx.rng.random() < SAME_ADDRESS_SHARE
    order: Record = {
        "order_id": ctx.fresh_id(7, "#W"),
        "user_id": user_id,
        "address": dict(user["address"]) if same_address else _new_address(ctx.rng),
        "items": items,
        "fulfillments": [],
        "status": "pending",
        "payment_history": [
            {
                "transaction_type": "payment",
                "amount": round(sum(item["price"] for item in items), 2),
                "payment_method_id": _user_method(ctx, user),
            }
        ],
    }
    STATUS_EFFECTS[status](ctx, order, user)
    return order


def _new_orders(ctx: _Context, users: Table, count: int) -> Table:
    orders: Table = {}
    owners = _order_owners(ctx.rng, list(users), count)
    for user_id, status in zip(owners, _status_plan(ctx.rng, count)):
        order = _new_order(ctx, user_id, users[user_id], status)
        orders[order["order_id"]] = order
        users[user_id]["orders"].append(order["order_id"])
    return orders


def _gift_card_charges(order: Record) -> list[tuple[str, float]]:
    """(gift card, amount) for every charge the order puts on a gift card, requested exchanges included."""
    charges = [
        (row["payment_method_id"], row["amount"])
        for row in order["payment_history"]
        if row["transaction_type"] == "payment"
    ]
    if order.get("exchange_price_difference", 0) > 0:
        charges.append((order["exchange_payment_method_id"], order["exchange_price_difference"]))
    return [(method_id, amount) for method_id, amount in charges if method_id.startswith("gift_card_")]


def _settle_gift_cards(rng: random.Random, users: Table, orders: Table) -> None:
    """Give each gift card a balance that covers the largest single charge made with it."""
    largest: dict[str, float] = {}
    for order in orders.values():
        for method_id, amount in _gift_card_charges(order):
            largest[method_id] = max(largest.get(method_id, 0.0), amount)
    for user in users.values():
        for method_id, method in user["payment_methods"].items():
            if method["source"] == "gift_card":
                method["balance"] = round(largest.get(method_id, 0.0) + rng.uniform(*GIFT_CARD_SLACK), 2)


# --- public API -------------------------------------------------------------------------------------


def generate(seed: int = DEFAULT_SEED, scale: float = 1.0) -> dict[str, Table]:
    """Build the retail database: ``scale`` multiplies users and orders, and above 1 the 50 products."""
    ctx = _Context(random.Random(seed))
    ctx.products = _new_products(ctx, copies(scale))
    users = _new_users(ctx, scaled(BASE_USERS, scale))
    orders = _new_orders(ctx, users, scaled(BASE_ORDERS, scale))
    _settle_gift_cards(ctx.rng, users, orders)
    return {"users": users, "orders": orders, "products": ctx.products}


def main(argv: Sequence[str] | None = None) -> int:
    return generator_main(
        "Generate the retail database (users, orders, products).",
        generate,
        DEFAULT_SEED,
        DEFAULT_OUT,
        "users and orders, and above 1 the products",
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
