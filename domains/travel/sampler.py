"""A seeded travel task sampler: random walks on the API graph over real database rows.

Each task serves one user, identified by email, and holds one to three intents. An intent is chosen
by a random walk on :data:`API_GRAPH` from the identification tool to a write or to a read whose
answer the user wants (the cheapest flight under constraints, a flight's status, a hotel, a cost);
a builder then picks rows of the current state that make the intent valid (or, for refusals, that
make the policy forbid it: over budget, passport too short, driver too young, basic economy change,
late insurance...) and writes what the user says and the gold actions. The shared framework
(:mod:`apigen_gym.kit.sampling`) executes intents as they are built, validates every task and keeps splits
on disjoint users.

Run ``python -m apigen_gym.domains.travel.sampler --split test`` to regenerate the shipped split.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from apigen_gym.core.database import Database, Record
from apigen_gym.core.policy import Step, Trace
from apigen_gym.core.task import TWIST_KINDS, Action, Task, TwistKind
from apigen_gym.domains.travel import DOMAIN, terms
from apigen_gym.domains.travel import booking as bk
from apigen_gym.domains.travel.graph import (
    ADD_CAR,
    ADD_HOTEL,
    ADD_TRAVELLER,
    API_GRAPH,
    BOOK,
    CALCULATE,
    CANCEL_CAR,
    CANCEL_FLIGHT,
    CANCEL_HOTEL,
    CANCEL_TRIP,
    CHANGE_CABIN,
    CHANGE_FLIGHT,
    CONVERT,
    FLIGHTS,
    HOTELS,
    IDENTIFY,
    INSURE,
    PROFILE,
    REDEEM,
    RENEW_PASSPORT,
    STATUS,
    TRANSFER,
    TRIP,
    WRITES,
)
from apigen_gym.domains.travel.tools import trip_started
from apigen_gym.kit.sampling import (
    ACCEPT_REFUSAL,
    DomainSampler,
    Identity,
    Intent,
    IntentMix,
    Late,
    Need,
    SplitSpec,
    TaskBuilder,
    join_words,
    money,
    read,
)

SPLITS: dict[str, SplitSpec] = {
    "test": SplitSpec(n=120, seed=8, buckets=(0, 1, 2)),
    "dev": SplitSpec(n=20, seed=5, buckets=(3,)),
    "train": SplitSpec(n=300, seed=11, buckets=(4, 5, 6, 7, 8, 9)),
    "evolving": SplitSpec(n=45, seed=14, buckets=(3,), twists=TWIST_KINDS),
}
"""Splits draw from disjoint user pools; ``test`` and ``evolving`` (tasks whose goal changes
mid-conversation, each twist kind in turn, on the dev users) are shipped."""

CABIN_WORDS = {"basic_economy": "basic economy", "economy": "economy", "business": "business class"}
CAR_WORDS = {"suv": "SUV"}
CARD_NAMES = {"visa": "Visa card", "mastercard": "Mastercard", "amex": "Amex card"}
TRIAL_RULES = tuple(
    r for r in DOMAIN.policy.rules if not r.needs_dialogue and r.id != "travel.authenticate_first"
)
"""Rules a proposed call is checked against before it becomes a gold write (or a refusal)."""
BOOKABLE_DAYS = [(terms.TODAY + timedelta(days=d)).isoformat() for d in range(2, 19)]
LOST_BAG = (
    "My suitcase did not arrive on my flight {flight}, and I want to talk to a human agent about "
    "finding it and getting compensation."
)

# --- words --------------------------------------------------------------------------------------


def _day(iso: str) -> str:
    """'2025-03-20' → 'March 20'."""
    day = date.fromisoformat(iso)
    return f"{day:%B} {day.day}"


def _plus(iso: str, days: int) -> str:
    return (date.fromisoformat(iso) + timedelta(days=days)).isoformat()


def _full_name(person: Record) -> str:
    return f"{person['first_name']} {person['last_name']}"


def _method_name(method: Record) -> str:
    """How a user names a payment method: card brand and digits, or the travel credit's id."""
    if method["type"] == "credit_card":
        return f"{CARD_NAMES.get(method['brand'], 'credit card')} ending in {method['last_four']}"
    return f"travel credit {method['id']}"


def _second_person(text: str) -> str:
    """'I will ... my ...' → 'you will ... your ...'."""
    return text.replace("I ", "you ").replace("my ", "your ")


def _dollars(amount: float) -> str:
    return f"${money(amount)}"


# --- context ------------------------------------------------------------------------------------


@dataclass
class Context(TaskBuilder):
    """A travel task under construction: the user's profile and trips as they are now."""

    @property
    def user(self) -> Record:
        return self.view.get("users", self.user_id)  # type: ignore[no-any-return]

    def place(self, code: str) -> str:
        return f"{self.view.get('airports', code)['city']} ({code})"

    def trips(self, *statuses: str) -> list[Record]:
        found = (self.view.get("trips", t) for t in self.user["trips"])
        return [t for t in found if t is not None and t["status"] in statuses]

    def upcoming(self, *, older: bool = False) -> list[Record]:
        """Booked trips of the user of which nothing has started (``older``: not booked in this task)."""
        return [
            t
            for t in self.trips("booked")
            if not trip_started(self.view, t) and not (older and t["created_at"] == terms.NOW_TEXT)
        ]

    def methods(self, kind: str) -> list[Record]:
        """Usable methods of ``kind`` (unexpired) that the user can name unambiguously."""
        methods = list(self.user["payment_methods"].values())
        names = [_method_name(m) for m in methods]
        return [
            m
            for m, name in zip(methods, names)
            if names.count(name) == 1
            and m["type"] == kind
            and (kind != "travel_credit" or not terms.credit_expired(m["expires"]))
        ]

    def card(self) -> Record | None:
        return self.pick(self.methods("credit_card"))

    def trial(self, actions: Sequence[Action]) -> list[Step]:
        """Run ``actions`` now and undo them: the steps they made."""
        fork = self.session.fork
        start = fork.snapshot()
        steps = []
        for index, action in enumerate(actions):
            before = fork.snapshot()
            output = DOMAIN.tools.execute(fork, action.name, action.arguments).output
            steps.append(Step(index, action.name, dict(action.arguments), output, before, fork.snapshot()))
        fork.restore(start)
        return steps

    def objection(self, actions: Sequence[Action]) -> str | None:
        """Why ``actions`` may not be made now (a tool error or a broken rule), else ``None``."""
        steps = self.trial(actions)
        for step in steps:
            if not step.ok:
                return step.output
        trace = Trace(steps=steps)
        found = [v.message for r in TRIAL_RULES for v in r(trace)]
        return found[0] if found else None

    def fits(self, actions: Sequence[Action]) -> bool:
        return self.objection(actions) is None


def _refusal(intent: Intent, kind: str, reason: str) -> Intent:
    """The same request, which the policy forbids: no write, the reason to decline, the forbidden call."""
    return replace(
        intent,
        kind=kind,
        writes=(),
        outputs=(),
        refuse=reason,
        attempt=intent.writes[0],
        condition=ACCEPT_REFUSAL,
    )


def _profile(ctx: Context) -> Action:
    return read(PROFILE, user_id=ctx.user_id)


def _trip_reads(ctx: Context, trip: Record) -> tuple[Action, ...]:
    return (_profile(ctx), read(TRIP, trip_id=trip["trip_id"]))


def _trip_name(ctx: Context, trip: Record) -> str:
    """'trip TR482913 to Lisbon (LIS)'."""
    return f"trip {trip['trip_id']} to {ctx.place(trip['flights'][0]['destination'])}"


def _pay_words(method: Record) -> tuple[str, str]:
    """What the user says and what the instruction says about paying with ``method``."""
    name = _method_name(method)
    return f"my {name}", f"your {name}"


# --- flight searches ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlightPick:
    """A flight found by a search with the user's constraints: the read, the row and the words."""

    search: Action
    row: Record
    words: str


def _routes(ctx: Context, origin: str, abroad: bool | None = None) -> list[str]:
    """Destinations with flights from ``origin`` and back (only abroad, or only at home, if asked)."""
    there = {f["destination"] for _, f in ctx.view.items("flights") if f["origin"] == origin}
    back = {f["origin"] for _, f in ctx.view.items("flights") if f["destination"] == origin}
    country = ctx.view.get("airports", origin)["country"]
    return sorted(
        code
        for code in there & back
        if abroad is None or (ctx.view.get("airports", code)["country"] != country) == abroad
    )


def _constraint(ctx: Context, rows: list[Record]) -> tuple[dict[str, Any], str]:
    """A filter the user cares about, chosen so that it keeps some flight (preferably not the cheapest)."""
    others = rows[1:] or rows
    target = ctx.rng.choice(others)
    options: list[tuple[dict[str, Any], str]] = []
    if not target["arrival_day_offset"]:
        hour = min(int(target["arrival_time"][:2]) + 1, 23)
        options.append(({"arrive_before": f"{hour:02d}:00"}, f"that lands by {hour:02d}:00"))
    hour = int(target["departure_time"][:2])
    options.append(({"depart_after": f"{hour:02d}:00"}, f"that leaves after {hour:02d}:00"))
    if any(r["stops"] for r in rows) and any(not r["stops"] for r in rows):
        options.append(({"max_stops": 0}, "that is non-stop"))
    if len({r["carrier"] for r in rows}) > 1:
        options.append(({"carrier": target["carrier"]}, f"on {target['carrier']}"))
    cap = (int(target["price"]) // 50 + 1) * 50
    options.append(({"max_price": cap}, f"under ${cap}"))
    return ctx.rng.choice(options)


def _pick_flight(
    ctx: Context, origin: str, destination: str, day: str, cabin: str, travellers: int, constrained: bool
) -> FlightPick | None:
    base: dict[str, Any] = {"origin": origin, "destination": destination, "date": day, "cabin": cabin}
    if travellers > 1:
        base["travellers"] = travellers
    rows = ctx.search(FLIGHTS, **base)
    if not rows:
        return None
    extra, words = _constraint(ctx, rows) if constrained else ({}, "")
    found = ctx.search(FLIGHTS, **base, **extra) if extra else rows
    if not found:
        return None
    return FlightPick(read(FLIGHTS, **base, **extra), found[0], words)


def _leg(pick: FlightPick) -> dict[str, str]:
    return {"flight_number": pick.row["flight_number"], "date": pick.row["date"]}


# --- bookings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TripPlan:
    """A round trip the user wants: where, when, who, which cabin, which flights, how to pay."""

    destination: str
    out: FlightPick
    back: FlightPick
    cabin: str
    traveller_ids: list[str]
    method: Record
    insured: bool

    def booking(self, user_id: str) -> Action:
        return Action(
            name=BOOK,
            arguments={
                "user_id": user_id,
                "traveller_ids": self.traveller_ids,
                "flights": [_leg(self.out), _leg(self.back)],
                "cabin": self.cabin,
                "payment_method_id": self.method["id"],
                "insurance": self.insured,
            },
        )

    @property
    def nights(self) -> tuple[str, str]:
        """The first night at the destination and the departure day."""
        return _plus(self.out.row["date"], self.out.row["arrival_day_offset"]), self.back.row["date"]


def _companions(ctx: Context, count: int) -> list[str]:
    others = sorted(t for t in ctx.user["travellers"] if t != "trv_1")
    return ["trv_1", *ctx.rng.sample(others, min(count, len(others)))]


def _plan_trip(
    ctx: Context, cabin: str | None = None, travellers: list[str] | None = None, abroad: bool | None = None
) -> TripPlan | None:
    """A round trip from the user's home airport, with the cheapest flights (the way out constrained)."""
    origin = ctx.user["home_airport"]
    destination = ctx.pick(_routes(ctx, origin, abroad))
    if destination is None:
        return None
    out_day = ctx.rng.choice(BOOKABLE_DAYS[:-4])
    back_day = _plus(out_day, ctx.rng.randint(2, 6))
    cabin = cabin or ctx.rng.choices(list(CABIN_WORDS), (2, 6, 2))[0]
    travellers = travellers or _companions(ctx, ctx.rng.choice((0, 0, 1, 1, 2)))
    constrained = ctx.rng.random() < 0.6
    out = _pick_flight(ctx, origin, destination, out_day, cabin, len(travellers), constrained)
    back = _pick_flight(ctx, destination, origin, back_day, cabin, len(travellers), False)
    method = ctx.card()
    if out is None or back is None or method is None:
        return None
    return TripPlan(destination, out, back, cabin, travellers, method, ctx.rng.random() < 0.3)


def _who(ctx: Context, traveller_ids: Sequence[str]) -> tuple[str, str]:
    """'me and Mia Chen' / 'you and Mia Chen'."""
    names = [_full_name(ctx.user["travellers"][t]) for t in traveller_ids if t != "trv_1"]
    return join_words(["me", *names]), join_words(["you", *names])


def _trip_words(ctx: Context, plan: TripPlan) -> tuple[str, str]:
    """The request and goal sentences describing a round trip."""
    mine, yours = _who(ctx, plan.traveller_ids)
    origin, where = ctx.place(plan.out.row["origin"]), ctx.place(plan.destination)
    cabin = CABIN_WORDS[plan.cabin]
    out_words = f" {plan.out.words}" if plan.out.words else ""
    insured = " with travel insurance" if plan.insured else ""
    pay_me, pay_you = _pay_words(plan.method)
    said = (
        f"I'd like to book a round trip in {cabin} for {mine} from {origin} to {where}{insured}, going on "
        f"{_day(plan.out.row['date'])} on the cheapest flight{out_words}, and coming back on "
        f"{_day(plan.back.row['date'])} on the cheapest flight. Please charge {pay_me}."
    )
    meant = (
        f"book a round trip in {cabin} for {yours} from {origin} to {where}{insured}: the cheapest flight"
        f"{out_words} on {_day(plan.out.row['date'])}, and the cheapest flight back on "
        f"{_day(plan.back.row['date'])}, paid with {pay_you}"
    )
    return said, meant


def _book_trip(ctx: Context) -> Intent | None:
    if not ctx.may_write(ctx.user_id, BOOK):
        return None
    plan = _plan_trip(ctx)
    return None if plan is None else _trip_booking(ctx, plan)


def _trip_booking(ctx: Context, plan: TripPlan) -> Intent | None:
    """Booking ``plan`` and hearing its total, when the policy allows it."""
    booking = plan.booking(ctx.user_id)
    if not ctx.fits([booking]):
        return None
    said, meant = _trip_words(ctx, plan)
    total = bk.plan_booking(
        ctx.view, ctx.user_id, plan.traveller_ids, booking.arguments["flights"], plan.cabin, plan.insured
    ).total
    return Intent(
        kind="book_trip",
        subject=ctx.user_id,
        request=f"{said} How much will it be in total?",
        goal=f"{meant}, and you want to know the total price",
        reads=(_profile(ctx), plan.out.search, plan.back.search),
        writes=(booking,),
        outputs=(money(total),),
        condition="If the agent asks for your travellers' details, they are saved in your profile.",
    )


def _stay_pick(
    ctx: Context, city: str, first: str, last: str, travellers: int
) -> tuple[Action, Record, str] | None:
    """The cheapest hotel room that sleeps everyone, under a constraint the user names."""
    rooms = 1 if travellers <= 2 else 2
    base: dict[str, Any] = {"city": city, "check_in": first, "check_out": last}
    if rooms > 1:
        base["rooms"] = rooms
    filters: list[tuple[dict[str, Any], str]] = [
        ({"min_stars": 4}, "with at least 4 stars"),
        ({"min_stars": 3}, "with at least 3 stars"),
        ({"refundable_only": True}, "with a refundable rate"),
        ({"max_distance_km": 10}, "within 10 km of the airport"),
        ({}, ""),
    ]
    extra, words = ctx.rng.choice(filters)
    rows = [r for r in ctx.search(HOTELS, **base, **extra) if r["max_guests"] * rooms >= travellers]
    if not rows:
        return None
    return read(HOTELS, **base, **extra), rows[0], words


def _stay_write(trip_id: str, row: Record, first: str, last: str, method: Record) -> Action:
    args = {
        "trip_id": trip_id,
        "hotel_id": row["hotel_id"],
        "room_type": row["room_type"],
        "check_in": first,
        "check_out": last,
        "payment_method_id": method["id"],
    }
    if row["rooms"] > 1:
        args["rooms"] = row["rooms"]
    return Action(name=ADD_HOTEL, arguments=args)


def _book_package(ctx: Context) -> Intent | None:
    """A round trip and a hotel for the nights in between, in one request."""
    if not ctx.may_write(ctx.user_id, BOOK):
        return None
    plan = _plan_trip(ctx)
    if plan is None:
        return None
    first, last = plan.nights
    city = ctx.view.get("airports", plan.destination)["city"]
    stay = _stay_pick(ctx, city, first, last, len(plan.traveller_ids))
    if stay is None:
        return None
    search, row, words = stay
    booking = plan.booking(ctx.user_id)
    add = _stay_write(bk.next_trip_id(ctx.view), row, first, last, plan.method)
    if not ctx.fits([booking, add]):
        return None
    said, meant = _trip_words(ctx, plan)
    hotel = f"the cheapest hotel {words}".strip()
    return Intent(
        kind="book_package",
        subject=ctx.user_id,
        request=f"{said} I also need {hotel} in {city} for my stay, paid the same way. Which hotel is it?",
        goal=f"{meant}; and stay at {hotel} in {city} from {_day(first)} to {_day(last)}, "
        "paid the same way, and you want to know the hotel's name",
        reads=(_profile(ctx), plan.out.search, plan.back.search, search),
        writes=(booking, add),
        outputs=(row["name"],),
    )


def _over_budget(ctx: Context, tries: int = 4) -> tuple[TripPlan, Action, str] | None:
    """A business-class round trip the company's budget does not cover (and nothing else forbids)."""
    for _ in range(tries):
        plan = _plan_trip(ctx, cabin="business", travellers=_companions(ctx, ctx.rng.choice((0, 1, 2))))
        booking = plan.booking(ctx.user_id) if plan else None
        objection = ctx.objection([booking]) if booking else None
        if plan and booking and objection and "budget" in objection:
            return plan, booking, objection
    return None


def _refuse_budget(ctx: Context) -> Intent | None:
    """A corporate traveller asks for a booking above the company's per-trip budget."""
    budget = bk.trip_budget(ctx.user)
    found = _over_budget(ctx) if budget is not None and ctx.may_write(ctx.user_id, BOOK) else None
    if found is None:
        return None
    plan, booking, _ = found
    total = bk.plan_booking(
        ctx.view, ctx.user_id, plan.traveller_ids, booking.arguments["flights"], plan.cabin, plan.insured
    ).total
    said, meant = _trip_words(ctx, plan)
    return Intent(
        kind="refuse_budget",
        subject=ctx.user_id,
        request=said,
        goal=f"{meant}. Your company pays for your trips, with a budget per trip",
        reads=(_profile(ctx), plan.out.search, plan.back.search),
        refuse=f"this trip would cost {_dollars(total)}, above the per-trip budget of {_dollars(budget)} "
        "set by your company.",
        attempt=booking,
        condition=ACCEPT_REFUSAL,
    )


def _refuse_passport(ctx: Context) -> Intent | None:
    """An international booking with a traveller whose passport is too short."""
    if not ctx.may_write(ctx.user_id, BOOK):
        return None
    short = [t for t, p in sorted(ctx.user["travellers"].items()) if p["passport"]["expiry"] < "2025-10-15"]
    person = ctx.pick(short)
    if person is None:
        return None
    travellers = ["trv_1"] if person == "trv_1" else ["trv_1", person]
    plan = _plan_trip(ctx, travellers=travellers, abroad=True)
    if plan is None:
        return None
    booking = plan.booking(ctx.user_id)
    objection = ctx.objection([booking])
    if objection is None or "passport" not in objection:
        return None
    said, meant = _trip_words(ctx, plan)
    return Intent(
        kind="refuse_passport",
        subject=ctx.user_id,
        request=said,
        goal=meant,
        reads=(_profile(ctx), plan.out.search, plan.back.search),
        refuse=f"this is an international trip and {objection.split(': ', 1)[-1]} (it must be valid for "
        "6 months after the return).",
        attempt=booking,
        condition=ACCEPT_REFUSAL,
    )


# --- adding to a trip ---------------------------------------------------------------------------


def _round_trip(
    ctx: Context, tool: str, *, empty: str | None = None, who: Callable[[Record], bool] | None = None
) -> tuple[Record, str, str] | None:
    """An upcoming round trip the user may change with ``tool`` (without ``empty`` parts, with a traveller
    ``who`` qualifies): the trip, its first night and its last day away."""
    people = ctx.user["travellers"]
    trips = [
        t
        for t in ctx.upcoming()
        if len(bk.active(t["flights"])) == 2
        and ctx.may_write(t["trip_id"], tool)
        and (empty is None or not bk.active(t[empty]))
        and (who is None or any(who(people[p]) for p in t["travellers"]))
    ]
    trip = ctx.pick(trips)
    if trip is None:
        return None
    out, back = bk.active(trip["flights"])
    if out["arrival_date"] >= back["date"]:
        return None
    return trip, out["arrival_date"], back["date"]


def _add_hotel(ctx: Context) -> Intent | None:
    found = _round_trip(ctx, ADD_HOTEL, empty="hotels")
    method = ctx.card()
    if found is None or method is None:
        return None
    trip, first, last = found
    city = ctx.view.get("airports", trip["flights"][0]["destination"])["city"]
    stay = _stay_pick(ctx, city, first, last, len(trip["travellers"]))
    if stay is None:
        return None
    search, row, words = stay
    add = _stay_write(trip["trip_id"], row, first, last, method)
    if not ctx.fits([add]):
        return None
    hotel = f"the cheapest hotel {words}".strip()
    pay_me, pay_you = _pay_words(method)
    return Intent(
        kind="add_hotel",
        subject=trip["trip_id"],
        request=f"For my {_trip_name(ctx, trip)}, please book {hotel} in {city} from {_day(first)} to "
        f"{_day(last)} for all of us, and charge {pay_me}. What will it cost?",
        goal=f"add {hotel} in {city} from {_day(first)} to {_day(last)} to your {_trip_name(ctx, trip)}, "
        f"paid with {pay_you}, and learn its price",
        reads=(*_trip_reads(ctx, trip), search),
        writes=(add,),
        outputs=(money(row["total"]),),
    )


def _car_choice(
    ctx: Context, trip: Record, first: str, last: str, wanted: str | None
) -> tuple[Action, Record, str] | None:
    """The cheapest car (of the class the user names, if any) at the trip's destination for those days."""
    city = ctx.view.get("airports", trip["flights"][0]["destination"])["city"]
    args: dict[str, Any] = {"city": city, "pickup_date": first, "dropoff_date": last}
    if wanted:
        args["car_class"] = wanted
    rows = ctx.search("search_cars", **args)
    if not rows:
        return None
    kind = f"{CAR_WORDS.get(wanted, wanted)} rental" if wanted else "rental car"
    return (
        read("search_cars", **args),
        rows[0],
        f"the cheapest {kind} in {city} from {_day(first)} to {_day(last)}",
    )


def _driver_and_car(
    ctx: Context, trip: Record, first: str, last: str, young: bool
) -> tuple[str, int, tuple[Action, Record, str]] | None:
    """A driver and a car: old enough for it, or (``young``) too young for the cheapest car of a class."""
    people = ctx.user["travellers"]
    pickup = date.fromisoformat(first)
    ages = {t: terms.age_on(date.fromisoformat(people[t]["birth_date"]), pickup) for t in trip["travellers"]}
    if young:
        driver_id = ctx.pick([t for t in trip["travellers"] if ages[t] < 25])
        classes: list[str | None] = ["suv", "premium", "van", "midsize", "compact", "economy", None]
        ctx.rng.shuffle(classes)
        choices = [_car_choice(ctx, trip, first, last, wanted) for wanted in classes] if driver_id else []
        found = [c for c in choices if c is not None and c[1]["min_driver_age"] > ages[driver_id]]
        return (driver_id, ages[driver_id], found[0]) if found else None
    choice = _car_choice(
        ctx, trip, first, last, ctx.pick([None, None, "compact", "suv", "midsize", "economy"])
    )
    if choice is None:
        return None
    driver_id = ctx.pick([t for t in trip["travellers"] if ages[t] >= choice[1]["min_driver_age"]])
    return None if driver_id is None else (driver_id, ages[driver_id], choice)


def _add_car(ctx: Context, *, young: bool = False) -> Intent | None:
    who = (lambda person: person["birth_date"] > "2000-03-10") if young else None
    found = _round_trip(ctx, ADD_CAR, empty="cars", who=who)
    method = ctx.card()
    if found is None or method is None:
        return None
    trip, first, last = found
    picked = _driver_and_car(ctx, trip, first, last, young)
    if picked is None:
        return None
    driver_id, age, (search, row, what) = picked
    add = Action(
        name=ADD_CAR,
        arguments={
            "trip_id": trip["trip_id"],
            "car_id": row["car_id"],
            "pickup_date": first,
            "dropoff_date": last,
            "driver_id": driver_id,
            "payment_method_id": method["id"],
        },
    )
    objection = ctx.objection([add])
    if (objection is None) == young or (young and "minimum age" not in str(objection)):
        return None
    driver = _full_name(ctx.user["travellers"][driver_id])
    me, you = ("me", "you") if driver_id == "trv_1" else (driver, driver)
    pay_me, pay_you = _pay_words(method)
    intent = Intent(
        kind="add_car",
        subject=trip["trip_id"],
        request=f"For my {_trip_name(ctx, trip)}, I need {what}, with {me} driving. Please charge {pay_me}.",
        goal=f"rent {what} for your {_trip_name(ctx, trip)}, with {you} driving, paid with {pay_you}",
        reads=(*_trip_reads(ctx, trip), search),
        writes=(add,),
    )
    if not young:
        return intent
    reason = (
        f"{you} will be {age} on {_day(first)}, under the minimum driver age of "
        f"{row['min_driver_age']} for this car."
    )
    return _refusal(intent, "refuse_driver_age", reason)


def _refuse_young_driver(ctx: Context) -> Intent | None:
    return _add_car(ctx, young=True)


def _insure(ctx: Context, *, late: bool = False) -> Intent | None:
    trips = [
        t
        for t in ctx.upcoming()
        if not t["insurance"]
        and terms.within_grace(t["created_at"]) != late
        and ctx.may_write(t["trip_id"], INSURE)
    ]
    trip, method = ctx.pick(trips), ctx.card()
    if trip is None or method is None:
        return None
    add = Action(name=INSURE, arguments={"trip_id": trip["trip_id"], "payment_method_id": method["id"]})
    objection = ctx.objection([add])
    if (objection is None) == late:
        return None
    pay_me, pay_you = _pay_words(method)
    cost = terms.INSURANCE_PER_TRAVELLER * len(trip["travellers"])
    intent = Intent(
        kind="insure",
        subject=trip["trip_id"],
        request=f"I'd like to add travel insurance to my {_trip_name(ctx, trip)}, paid with {pay_me}. "
        "How much is it?",
        goal=f"insure your {_trip_name(ctx, trip)}, paid with {pay_you}, and learn the price",
        reads=_trip_reads(ctx, trip),
        writes=(add,),
        outputs=(money(cost),),
    )
    if not late:
        return intent
    reason = (
        f"insurance can only be added within 24 hours of booking, and trip {trip['trip_id']} was booked on "
        f"{_day(trip['created_at'][:10])}."
    )
    return _refusal(intent, "refuse_late_insurance", reason)


def _refuse_late_insurance(ctx: Context) -> Intent | None:
    return _insure(ctx, late=True)


# --- changes ------------------------------------------------------------------------------------


def _segment_words(ctx: Context, segment: Record) -> str:
    route = f"from {ctx.place(segment['origin'])} to {ctx.place(segment['destination'])}"
    return f"flight {segment['flight_number']} {route} on {_day(segment['date'])}"


def _change_flight(ctx: Context, *, basic: bool = False) -> Intent | None:
    options = [
        (t, s)
        for t in ctx.upcoming(older=True)
        if ctx.may_write(t["trip_id"], CHANGE_FLIGHT)
        for s in bk.active(t["flights"])
        if (s["cabin"] == "basic_economy") == basic
    ]
    choice, method = ctx.pick(options), ctx.card()
    if choice is None or method is None:
        return None
    trip, segment = choice
    new_day = _plus(segment["date"], ctx.rng.choice((-2, -1, 1, 2)))
    pick = _pick_flight(
        ctx,
        segment["origin"],
        segment["destination"],
        new_day,
        segment["cabin"],
        len(trip["travellers"]),
        False,
    )
    if pick is None or new_day <= terms.TODAY.isoformat():
        return None
    change = Action(
        name=CHANGE_FLIGHT,
        arguments={
            "trip_id": trip["trip_id"],
            "segment_id": segment["segment_id"],
            "new_flight_number": pick.row["flight_number"],
            "new_date": new_day,
            "payment_method_id": method["id"],
        },
    )
    objection = ctx.objection([change])
    if (objection is None) == basic or (basic and "basic economy" not in str(objection)):
        return None
    pay_me, pay_you = _pay_words(method)
    what = _segment_words(ctx, segment)
    net = (
        0.0
        if basic
        else bk.plan_flight_change(
            ctx.view, trip["trip_id"], segment["segment_id"], pick.row["flight_number"], new_day
        ).net
    )
    ask = " How much will I pay, or get back?" if net else ""
    intent = Intent(
        kind="change_flight",
        subject=trip["trip_id"],
        request=f"On my {_trip_name(ctx, trip)}, I need to move {what} to {_day(new_day)}, on the cheapest "
        f"flight that day. Please charge any cost to {pay_me}.{ask}",
        goal=f"move {what} (your {_trip_name(ctx, trip)}) to the cheapest flight on {_day(new_day)}, "
        f"paying any cost with {pay_you}",
        reads=(*_trip_reads(ctx, trip), pick.search),
        writes=(change,),
        outputs=(money(abs(net)),) if net else (),
        condition="If the agent tells you the cost, you accept it.",
    )
    if not basic:
        return intent
    reason = f"{segment['flight_number']} is booked in basic economy, which can never be changed."
    return _refusal(intent, "refuse_basic_change", reason)


def _refuse_basic_change(ctx: Context) -> Intent | None:
    return _change_flight(ctx, basic=True)


def _change_cabin(ctx: Context) -> Intent | None:
    upgrades = {"basic_economy": "economy", "economy": "business"}
    options = [
        t
        for t in ctx.upcoming(older=True)
        if ctx.may_write(t["trip_id"], CHANGE_CABIN) and bk.active(t["flights"])
    ]
    trip, method = ctx.pick(options), ctx.card()
    if trip is None or method is None:
        return None
    segments = bk.active(trip["flights"])
    cabin = upgrades.get(segments[0]["cabin"])
    if cabin is None:
        return None
    change = Action(
        name=CHANGE_CABIN,
        arguments={"trip_id": trip["trip_id"], "cabin": cabin, "payment_method_id": method["id"]},
    )
    if not ctx.fits([change]):
        return None
    net = bk.plan_cabin_change(ctx.view, trip["trip_id"], cabin).net
    details = tuple(
        read("get_flight_details", flight_number=s["flight_number"], date=s["date"]) for s in segments
    )
    pay_me, pay_you = _pay_words(method)
    return Intent(
        kind="change_cabin",
        subject=trip["trip_id"],
        request=f"Please upgrade all the flights of my {_trip_name(ctx, trip)} to {CABIN_WORDS[cabin]}, "
        f"charged to {pay_me}. How much extra is it?",
        goal=f"upgrade every flight of your {_trip_name(ctx, trip)} to {CABIN_WORDS[cabin]}, paid with "
        f"{pay_you}, and learn how much extra it costs",
        reads=(*_trip_reads(ctx, trip), *details),
        writes=(change,),
        outputs=(money(net),),
    )


# --- cancellations ------------------------------------------------------------------------------


def _cancel_intent(
    ctx: Context, kind: str, trip: Record, action: Action, what: str, why: str
) -> Intent | None:
    """A cancellation whose refund the user wants to hear."""
    steps = ctx.trial([action])
    if not steps[0].ok or not ctx.fits([action]):
        return None
    before, after = trip["payments"], json.loads(steps[0].output)["payments"]
    refund = sum(p["amount"] for p in after[len(before) :] if p["type"] == "refund")
    return Intent(
        kind=kind,
        subject=trip["trip_id"],
        request=f"Please cancel {what} my {_trip_name(ctx, trip)}: {why}. How much will I get back?",
        goal=f"cancel {what} your {_trip_name(ctx, trip)} because {_second_person(why)}, "
        "and learn how much is refunded",
        reads=_trip_reads(ctx, trip),
        writes=(action,),
        outputs=(money(refund),),
        condition="If the agent tells you a part of the money is not refunded, you still want to cancel.",
    )


def _cancel_flight(ctx: Context) -> Intent | None:
    options = [
        t
        for t in ctx.upcoming(older=True)
        if len(bk.active(t["flights"])) == 2 and ctx.may_write(t["trip_id"], CANCEL_FLIGHT)
    ]
    trip = ctx.pick(options)
    if trip is None:
        return None
    segment = bk.active(trip["flights"])[-1]
    action = Action(
        name=CANCEL_FLIGHT, arguments={"trip_id": trip["trip_id"], "segment_id": segment["segment_id"]}
    )
    what = f"the return {_segment_words(ctx, segment)} of"
    return _cancel_intent(ctx, "cancel_flight", trip, action, what, "I will make my own way back")


def _cancel_part(
    ctx: Context, kind: str, tool: str, part: str, id_key: str, describe: Callable[[Record], str], why: str
) -> Intent | None:
    """Cancel one active hotel stay or car rental (``part``) of an upcoming trip."""
    options = [
        (t, p)
        for t in ctx.upcoming(older=True)
        if ctx.may_write(t["trip_id"], tool)
        for p in bk.active(t[part])
    ]
    choice = ctx.pick(options)
    if choice is None:
        return None
    trip, item = choice
    action = Action(name=tool, arguments={"trip_id": trip["trip_id"], id_key: item[id_key]})
    return _cancel_intent(ctx, kind, trip, action, describe(item), why)


def _cancel_hotel(ctx: Context) -> Intent | None:
    def describe(stay: Record) -> str:
        return f"the stay at {stay['hotel_name']} of"

    return _cancel_part(
        ctx, "cancel_hotel", CANCEL_HOTEL, "hotels", "stay_id", describe, "I will stay with friends instead"
    )


def _cancel_car(ctx: Context) -> Intent | None:
    def describe(rental: Record) -> str:
        car = CAR_WORDS.get(rental["car_class"], rental["car_class"])
        return f"the {car} rental from {rental['company']} of"

    return _cancel_part(
        ctx, "cancel_car", CANCEL_CAR, "cars", "rental_id", describe, "I will not need a car after all"
    )


def _cancel_trip(ctx: Context) -> Intent | None:
    trip = ctx.pick([t for t in ctx.upcoming(older=True) if ctx.may_write(t["trip_id"], CANCEL_TRIP)])
    if trip is None:
        return None
    action = Action(name=CANCEL_TRIP, arguments={"trip_id": trip["trip_id"]})
    return _cancel_intent(ctx, "cancel_trip", trip, action, "the whole of", "my plans have changed")


def _refuse_started_trip(ctx: Context) -> Intent | None:
    trip = ctx.pick([t for t in ctx.trips("in_progress") if ctx.fresh(t["trip_id"])])
    if trip is None:
        return None
    attempt = Action(name=CANCEL_TRIP, arguments={"trip_id": trip["trip_id"]})
    if ctx.fits([attempt]):
        return None
    flown = next(s for s in trip["flights"] if s["status"] == "booked")
    return Intent(
        kind="refuse_started_trip",
        subject=trip["trip_id"],
        request=f"I want to cancel my whole {_trip_name(ctx, trip)} and get my money back.",
        goal=f"cancel your whole {_trip_name(ctx, trip)}, which has already begun",
        reads=_trip_reads(ctx, trip),
        refuse=f"trip {trip['trip_id']} has already started (flight {flown['flight_number']} left on "
        f"{_day(flown['date'])}), so it can no longer be cancelled as a whole.",
        attempt=attempt,
        condition=ACCEPT_REFUSAL,
    )


# --- the profile --------------------------------------------------------------------------------

NEW_PEOPLE = (
    ("Mia", "Novak"),
    ("Lucas", "Ferreira"),
    ("Hana", "Kobayashi"),
    ("Oscar", "Lindqvist"),
    ("Amelie", "Roux"),
    ("Tariq", "Haddad"),
    ("Elena", "Marin"),
    ("Samuel", "Okafor"),
)
COUNTRIES = ("United States", "Canada", "United Kingdom", "Germany", "France", "Japan", "Australia")


def _add_traveller(ctx: Context) -> Intent | None:
    if not ctx.may_write(ctx.user_id, ADD_TRAVELLER):
        return None
    first, last = ctx.rng.choice(NEW_PEOPLE)
    birth = date(ctx.rng.randint(1960, 2015), ctx.rng.randint(1, 12), ctx.rng.randint(1, 28)).isoformat()
    number = f"{ctx.rng.choice('BCDFGHKLMNPRSTVXZ')}{ctx.rng.randrange(10**7, 10**8)}"
    country = ctx.rng.choice(COUNTRIES)
    expiry = date(ctx.rng.randint(2027, 2034), ctx.rng.randint(1, 12), ctx.rng.randint(1, 28)).isoformat()
    add = Action(
        name=ADD_TRAVELLER,
        arguments={
            "user_id": ctx.user_id,
            "first_name": first,
            "last_name": last,
            "birth_date": birth,
            "passport_number": number,
            "passport_country": country,
            "passport_expiry": expiry,
        },
    )
    if not ctx.fits([add]):
        return None
    facts = f"{first} {last}, born on {birth}, passport {number} issued by {country}, valid until {expiry}"
    return Intent(
        kind="add_traveller",
        subject=ctx.user_id,
        request=f"Please save a new travel companion in my profile: {facts}.",
        goal=f"save a new travel companion in your profile: {facts}",
        reads=(_profile(ctx),),
        writes=(add,),
    )


def _renew_passport(ctx: Context) -> Intent | None:
    if not ctx.may_write(ctx.user_id, RENEW_PASSPORT):
        return None
    people = [p for p in ctx.user["travellers"].values() if p["passport"]["expiry"] < "2026-03-10"]
    person = ctx.pick(people)
    if person is None:
        return None
    number = f"{ctx.rng.choice('BCDFGHKLMNPRSTVXZ')}{ctx.rng.randrange(10**7, 10**8)}"
    expiry = f"{ctx.rng.randint(2034, 2035)}-{person['passport']['expiry'][5:]}"
    expiry = expiry if expiry[5:] != "02-29" else f"{expiry[:5]}02-28"
    country = person["passport"]["country"]
    renew = Action(
        name=RENEW_PASSPORT,
        arguments={
            "user_id": ctx.user_id,
            "traveller_id": person["traveller_id"],
            "passport_number": number,
            "passport_country": country,
            "passport_expiry": expiry,
        },
    )
    mine = person["traveller_id"] == "trv_1"
    whose, yours = ("My", "your") if mine else (f"{_full_name(person)}'s",) * 2
    facts = f"the new one is {number}, issued by {country}, valid until {expiry}"
    return Intent(
        kind="renew_passport",
        subject=ctx.user_id,
        request=f"{whose} passport was renewed: {facts}. Please update it in my profile.",
        goal=f"record {yours} renewed passport ({facts})",
        reads=(_profile(ctx),),
        writes=(renew,),
    )


def _redeem(ctx: Context, *, too_many: bool = False) -> Intent | None:
    if not ctx.may_write(ctx.user_id, REDEEM):
        return None
    balance = ctx.user["loyalty"]["points"]
    if too_many:
        points = (balance // 1000 + 1) * 1000 + ctx.rng.choice((0, 1000, 4000))
    else:
        steps = [p for p in (1000, 2000, 2500, 5000, 10000, 20000) if p <= balance]
        points = ctx.pick(steps)
    if not points:
        return None
    redeem = Action(name=REDEEM, arguments={"user_id": ctx.user_id, "points": points})
    if ctx.fits([redeem]) == too_many:
        return None
    intent = Intent(
        kind="redeem_points",
        subject=ctx.user_id,
        request=f"I'd like to turn {points} of my loyalty points into travel credit. "
        "How much credit is that?",
        goal=f"turn {points} loyalty points into travel credit, and learn its value",
        reads=(_profile(ctx),),
        writes=(redeem,),
        outputs=(money(terms.points_value(points)),),
    )
    if not too_many:
        return intent
    return _refusal(
        intent, "refuse_points", f"you have {balance} points, fewer than the {points} you asked to redeem."
    )


def _refuse_points(ctx: Context) -> Intent | None:
    return _redeem(ctx, too_many=True)


# --- information --------------------------------------------------------------------------------


def _cheapest_flight(ctx: Context) -> Intent | None:
    origin = ctx.user["home_airport"]
    destination = ctx.pick(_routes(ctx, origin))
    if destination is None or not ctx.fresh(f"{origin}-{destination}"):
        return None
    cabin = ctx.rng.choices(list(CABIN_WORDS), (1, 4, 1))[0]
    pick = _pick_flight(ctx, origin, destination, ctx.rng.choice(BOOKABLE_DAYS), cabin, 1, True)
    if pick is None:
        return None
    what = (
        f"the cheapest {CABIN_WORDS[cabin]} flight from {ctx.place(origin)} to {ctx.place(destination)} on "
        f"{_day(pick.row['date'])} {pick.words}"
    )
    return Intent(
        kind="info_cheapest_flight",
        subject=f"{origin}-{destination}",
        request=f"I'm not booking yet, but what is {what}? I need its flight number and price.",
        goal=f"know the flight number and price of {what} (without booking it)",
        reads=(_profile(ctx), pick.search),
        outputs=(pick.row["flight_number"], money(pick.row["price"])),
    )


def _flight_status(ctx: Context) -> Intent | None:
    options = [
        (t, s)
        for t in ctx.trips("booked", "in_progress")
        if ctx.fresh(t["trip_id"])
        for s in bk.active(t["flights"])
        if not bk.departed(ctx.view, s)
    ]
    interesting = [
        (t, s)
        for t, s in options
        if ctx.view.get("flights", s["flight_number"])["dates"][s["date"]]["status"] != "scheduled"
    ]
    choice = ctx.pick(interesting if interesting and ctx.rng.random() < 0.7 else options)
    if choice is None:
        return None
    trip, segment = choice
    day = ctx.view.get("flights", segment["flight_number"])["dates"][segment["date"]]
    outputs = (day["status"], str(day["delay_minutes"])) if day["status"] == "delayed" else (day["status"],)
    what = _segment_words(ctx, segment)
    return Intent(
        kind="info_flight_status",
        subject=trip["trip_id"],
        request=f"Is my {what} on time? If it is delayed, by how many minutes?",
        goal=f"know the status of your {what} (and the delay in minutes, if any)",
        reads=(
            *_trip_reads(ctx, trip),
            read(STATUS, flight_number=segment["flight_number"], date=segment["date"]),
        ),
        outputs=outputs,
    )


def _cheapest_hotel(ctx: Context) -> Intent | None:
    found = _round_trip(ctx, HOTELS)
    if found is None or not ctx.fresh(found[0]["trip_id"]):
        return None
    trip, first, last = found
    city = ctx.view.get("airports", trip["flights"][0]["destination"])["city"]
    stay = _stay_pick(ctx, city, first, last, len(trip["travellers"]))
    if stay is None:
        return None
    search, row, words = stay
    hotel = f"the cheapest hotel {words}".strip()
    return Intent(
        kind="info_cheapest_hotel",
        subject=trip["trip_id"],
        request=f"For my {_trip_name(ctx, trip)}, what is {hotel} in {city} for all of us from "
        f"{_day(first)} to {_day(last)}, and what would it cost in total? Don't book anything yet.",
        goal=f"know the name and total price of {hotel} in {city} for your {_trip_name(ctx, trip)}, from "
        f"{_day(first)} to {_day(last)}, without booking it",
        reads=(*_trip_reads(ctx, trip), search),
        outputs=(row["name"], money(row["total"])),
    )


def _trip_cost(ctx: Context) -> Intent | None:
    trips = [t for t in ctx.trips("booked", "in_progress", "completed") if ctx.fresh(t["trip_id"])]
    trip = ctx.pick(trips)
    if trip is None:
        return None
    sign = {"charge": "+", "refund": "-"}
    expression = " ".join(f"{sign[p['type']]} {p['amount']}" for p in trip["payments"]).lstrip("+ ")
    calc = (read(CALCULATE, expression=expression),) if len(trip["payments"]) > 1 else ()
    return Intent(
        kind="info_trip_cost",
        subject=trip["trip_id"],
        request=f"How much has my {_trip_name(ctx, trip)} cost me so far, once refunds are taken off?",
        goal=f"know how much your {_trip_name(ctx, trip)} has cost you in total, net of refunds",
        reads=(*_trip_reads(ctx, trip), *calc),
        outputs=(money(bk.net_cost(trip)),),
    )


def _convert(ctx: Context) -> Intent | None:
    options = [
        (t, s)
        for t in ctx.trips("booked", "in_progress")
        if ctx.fresh(t["trip_id"])
        for s in bk.active(t["hotels"])
    ]
    choice = ctx.pick(options)
    if choice is None:
        return None
    trip, stay = choice
    currency = ctx.view.get("airports", ctx.view.get("hotels", stay["hotel_id"])["airport"])["currency"]
    if currency == "USD":
        currency = ctx.rng.choice(("EUR", "GBP", "CAD", "MXN", "JPY"))
    convert = read(CONVERT, amount=stay["total"], from_currency="USD", to_currency=currency)
    converted = json.loads(DOMAIN.tools.execute(ctx.session.fork, CONVERT, convert.arguments).output)[
        "converted"
    ]
    name = ctx.view.get("exchange_rates", currency)["name"]
    return Intent(
        kind="info_convert",
        subject=trip["trip_id"],
        request=f"My stay at {stay['hotel_name']} cost {_dollars(stay['total'])}. "
        f"How much is that in {name} ({currency})?",
        goal=f"know what your stay at {stay['hotel_name']} cost in {name} ({currency})",
        reads=(*_trip_reads(ctx, trip), convert),
        outputs=(money(converted),),
    )


def _transfer(ctx: Context) -> Intent | None:
    if not ctx.last:
        return None
    trips = [t for t in ctx.trips("in_progress", "completed") if ctx.fresh(t["trip_id"])]
    trip = ctx.pick(trips)
    if trip is None:
        return None
    segment = next(s for s in trip["flights"] if s["status"] == "booked")
    summary = (
        f"Lost suitcase on flight {segment['flight_number']} of trip {trip['trip_id']}; "
        "the user wants compensation."
    )
    return Intent(
        kind="transfer",
        subject=trip["trip_id"],
        request=LOST_BAG.format(flight=segment["flight_number"]),
        goal=f"get help with your suitcase, lost on flight {segment['flight_number']}, from a human agent",
        reads=(*_trip_reads(ctx, trip), Action(name=TRANSFER, arguments={"summary": summary})),
    )


# --- late context -------------------------------------------------------------------------------

WORRIES = (
    ("my mother has been unwell lately", "your mother has been unwell lately"),
    ("I may be called back to work at short notice", "you may be called back to work at short notice"),
    ("there are strikes announced at the airport", "strikes are announced at the airport"),
)
"""Facts that make a traveller want insurance after all: what the user says, what they are told."""


def _solo(ctx: Context, pick: FlightPick) -> FlightPick | None:
    """The same search for one traveller: its cheapest flight may differ (fewer seats needed)."""
    arguments = {k: v for k, v in pick.search.arguments.items() if k != "travellers"}
    found = ctx.search(FLIGHTS, **arguments)
    return FlightPick(read(FLIGHTS, **arguments), found[0], pick.words) if found else None


def _late_companion(ctx: Context) -> Late | None:
    """A trip the user first books alone; asked to confirm, they say a saved traveller comes along."""
    others = sorted(t for t in ctx.user["travellers"] if t != "trv_1")
    companion = ctx.pick(others)
    if companion is None or not ctx.may_write(ctx.user_id, BOOK):
        return None
    both = _plan_trip(ctx, travellers=["trv_1", companion])
    out, back = (_solo(ctx, both.out), _solo(ctx, both.back)) if both else (None, None)
    if both is None or out is None or back is None:
        return None
    first = _trip_booking(ctx, replace(both, out=out, back=back, traveller_ids=["trv_1"]))
    final = _trip_booking(ctx, both)
    if first is None or final is None:
        return None
    who = _full_name(ctx.user["travellers"][companion])
    return Late(
        first=first,
        final=final,
        said=f"Oh, I nearly forgot: {who} is coming along too, so please book the cheapest flights for both "
        f"of us ({who} is saved in my profile). How much will it be in total then?",
        meant=f"you mention that {who} (saved in your profile) is coming too, so the trip must be booked for "
        "both of you on the cheapest flights for two, and you want to know the new total",
    )


def _late_insurance(ctx: Context) -> Late | None:
    """A trip the user first books uninsured; asked to confirm, they mention a worry and want insurance."""
    plan = _plan_trip(ctx) if ctx.may_write(ctx.user_id, BOOK) else None
    if plan is None:
        return None
    first = _trip_booking(ctx, replace(plan, insured=False))
    final = _trip_booking(ctx, replace(plan, insured=True))
    if first is None or final is None:
        return None
    said, meant = ctx.rng.choice(WORRIES)
    return Late(
        first=first,
        final=final,
        said=f"Before you book: {said}, so I'd like travel insurance on this trip too. "
        "What is the total with it?",
        meant=f"you mention that {meant}, so you want travel insurance on the trip too, and the new total",
    )


LATE: tuple[Callable[[Context], Late | None], ...] = (_late_companion, _late_insurance)
"""Builders of late context: facts the user reveals when asked to confirm, changing the write."""


# --- walks --------------------------------------------------------------------------------------

Builder = Callable[[Context], "Intent | None"]
PACKAGE = "package"

FAMILIES: dict[str, tuple[Builder, ...]] = {
    BOOK: (_book_trip,),
    PACKAGE: (_book_package,),
    ADD_HOTEL: (_add_hotel,),
    ADD_CAR: (_add_car,),
    INSURE: (_insure,),
    CHANGE_FLIGHT: (_change_flight,),
    CHANGE_CABIN: (_change_cabin,),
    CANCEL_FLIGHT: (_cancel_flight,),
    CANCEL_HOTEL: (_cancel_hotel,),
    CANCEL_CAR: (_cancel_car,),
    CANCEL_TRIP: (_cancel_trip,),
    ADD_TRAVELLER: (_add_traveller,),
    RENEW_PASSPORT: (_renew_passport,),
    REDEEM: (_redeem,),
    FLIGHTS: (_cheapest_flight,),
    HOTELS: (_cheapest_hotel,),
    STATUS: (_flight_status,),
    CALCULATE: (_trip_cost,),
    CONVERT: (_convert,),
    TRANSFER: (_transfer,),
}
"""Valid-intent builders by the tool a walk ends at (``PACKAGE``: a walk through a booking onwards)."""
REFUSALS: dict[str, tuple[Builder, ...]] = {
    BOOK: (_refuse_budget, _refuse_passport),
    PACKAGE: (_refuse_budget, _refuse_passport),
    ADD_CAR: (_refuse_young_driver,),
    INSURE: (_refuse_late_insurance,),
    CHANGE_FLIGHT: (_refuse_basic_change,),
    CANCEL_TRIP: (_refuse_started_trip,),
    REDEEM: (_refuse_points,),
}
"""Builders of a request for the walk's write that the policy forbids in the user's state."""
REFUSAL_WEIGHTS = {REDEEM: 0.1, INSURE: 0.5}
"""How often each family is the target of a refusal (default 1; the points refusal is always possible)."""
REFUSAL_SHARE = 0.15
"""Chance that an unconstrained intent ending at a write is a forbidden request."""

TARGET_WEIGHTS = {
    TRIP: 5.0,
    FLIGHTS: 0.6,
    BOOK: 0.8,
    ADD_TRAVELLER: 0.15,
    RENEW_PASSPORT: 0.15,
    REDEEM: 0.15,
    TRANSFER: 0.5,
    "get_flight_details": 0.05,
    "get_hotel_details": 0.05,
    "search_cars": 0.6,
    CANCEL_CAR: 1.5,
    CANCEL_HOTEL: 1.3,
}
"""Relative weight of stepping to a tool (default 1): steers walks towards rarer valid intents."""
STOP_PROBABILITY = {FLIGHTS: 0.45, HOTELS: 0.55, BOOK: 0.6, CALCULATE: 1.0, CONVERT: 1.0, STATUS: 1.0}
"""Chance that a walk reaching this tool stops there (writes always stop; ``book_trip`` may go on)."""
WRITE_WEIGHTS = {
    BOOK: 1.0,
    PACKAGE: 1.0,
    ADD_HOTEL: 1.0,
    ADD_CAR: 1.2,
    INSURE: 0.8,
    CHANGE_FLIGHT: 1.0,
    CHANGE_CABIN: 0.8,
    CANCEL_FLIGHT: 1.0,
    CANCEL_HOTEL: 1.0,
    CANCEL_CAR: 1.0,
    CANCEL_TRIP: 1.0,
    ADD_TRAVELLER: 0.3,
    RENEW_PASSPORT: 0.3,
    REDEEM: 0.2,
}
"""How often each write is the target of an intent that must write (every one is reachable in the graph)."""
TRIES: dict[Need, int] = {None: 16, "write": 16, "refuse": 40}
"""Walks tried for an intent (refusals exist for few families, so they get more)."""
MULTI_WRITE_SHARE = 0.35
REFUSAL_TASK_SHARE = 0.18
MIX = IntentMix(FAMILIES, REFUSALS, REFUSAL_SHARE, MULTI_WRITE_SHARE, REFUSAL_TASK_SHARE, late=LATE)
"""How this domain mixes its intents."""


def _stop(tool: str) -> float:
    return STOP_PROBABILITY.get(tool, 1.0 if tool in WRITES else 0.0)


def walk(rng: random.Random, start: str) -> list[str]:
    """A weighted random walk on :data:`API_GRAPH` from ``start``: the tools it visits, in order."""
    return API_GRAPH.walk(rng, start, weight=lambda _, target: TARGET_WEIGHTS.get(target, 1.0), stop=_stop)


def _family(path: list[str]) -> str:
    return PACKAGE if BOOK in path and path[-1] != BOOK else path[-1]


def _target(rng: random.Random, need: Need) -> str:
    """The family of the next intent: a write (or forbidden write) the plan asks for, or a walk's end."""
    if need == "refuse":
        return rng.choices(list(REFUSALS), [REFUSAL_WEIGHTS.get(f, 1.0) for f in REFUSALS])[0]
    if need == "write":
        return rng.choices(list(WRITE_WEIGHTS), list(WRITE_WEIGHTS.values()))[0]
    return _family(walk(rng, IDENTIFY[0]))


def _draw_intent(ctx: Context, need: Need) -> Intent | None:
    """An intent reached by a walk from the identification tool, resampling walks that lead nowhere."""
    return MIX.draw(ctx, need, lambda need: _target(ctx.rng, need), TRIES[need])


# --- tasks --------------------------------------------------------------------------------------


def _identity(user: Record) -> Identity:
    known = {"email": user["email"]}
    name = f"{user['name']['first_name']} {user['name']['last_name']}"
    who = f"You are {name}, and your email address is {user['email']}."
    return Identity(Action(name="find_user_id_by_email", arguments=known), known, who)


def build_task(
    database: Database, rng: random.Random, user_id: str, twist: TwistKind | None = None
) -> Task | None:
    """One task for ``user_id`` (its id and meta are completed by the caller), or None."""
    ctx = Context.start(DOMAIN, database, rng, user_id, subject_key="trip_id")
    identity = _identity(ctx.user)
    if not ctx.identify(identity):
        return None
    return ctx.build(identity, MIX.plan(rng, twist), lambda need: _draw_intent(ctx, need), MIX.late)


SAMPLER = DomainSampler("travel", SPLITS, build_task)
sample_tasks = SAMPLER.sample
main = SAMPLER.main


if __name__ == "__main__":
    raise SystemExit(main())
