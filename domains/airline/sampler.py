"""A seeded airline task sampler: random walks on the API graph over real database rows.

Each task serves one user, who gives their user id (the airline has no look-up tool: the profile read
is the task's first action), and holds one to three intents. An intent is chosen by a random walk on
:data:`API_GRAPH` from the profile (or from the airport list) to a write or to a read whose answer the
user wants; a builder then picks rows of the current state that make the intent valid (or, for
refusals, that make the policy forbid it) and writes what the user says and the gold actions. The
shared framework (:mod:`apigen_gym.kit.sampling`) executes intents as they are built, validates every task
and keeps splits on disjoint users.

Run ``python -m apigen_gym.domains.airline.sampler --split test`` to regenerate the shipped split.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from apigen_gym.core.database import Database, Record
from apigen_gym.core.task import TWIST_KINDS, Action, Task, TwistKind
from apigen_gym.domains.airline import DOMAIN
from apigen_gym.domains.airline.graph import (
    AIRPORTS,
    API_GRAPH,
    BOOK,
    CANCEL,
    CHANGE_BAGS,
    CHANGE_FLIGHTS,
    CHANGE_PASSENGERS,
    PROFILE,
    RESERVATION,
    SEARCH_DIRECT,
    SEARCH_ONESTOP,
    SEND_CERTIFICATE,
    TRANSFER,
)
from apigen_gym.domains.airline.rules import (
    airline_cancelled,
    eligible_without_insurance,
    flown,
    segment_statuses,
)
from apigen_gym.domains.airline.terms import (
    AIRPORT_CITIES,
    BAG_FEE,
    CABINS,
    CANCELLED_FLIGHT_CREDIT,
    DELAYED_FLIGHT_CREDIT,
    INSURANCE_FEE,
    TODAY,
    booked_within_window,
    free_bags,
    nonfree_bags,
)
from apigen_gym.kit.sampling import (
    ACCEPT_REFUSAL,
    EXACT_FIGURE,
    DomainSampler,
    Identity,
    Intent,
    IntentMix,
    Late,
    Need,
    Ref,
    SplitSpec,
    TaskBuilder,
    info_intent,
    join_words,
    money,
    read,
)

SPLITS: dict[str, SplitSpec] = {
    "test": SplitSpec(n=80, seed=20240515, buckets=(0, 1, 2)),
    "dev": SplitSpec(n=20, seed=3, buckets=(3,)),
    "train": SplitSpec(n=300, seed=17, buckets=(4, 5, 6, 7, 8, 9)),
    "evolving": SplitSpec(n=45, seed=14, buckets=(3,), twists=TWIST_KINDS),
}
"""Splits draw from disjoint user pools; ``test`` and ``evolving`` (tasks whose goal changes
mid-conversation, each twist kind in turn, on the dev users) are shipped."""

FUTURE_DAYS = tuple(f"2024-05-{day:02d}" for day in range(16, 31))
"""The days that can be booked: after today, within the calendar."""
CABIN_WORDS = {"basic_economy": "basic economy", "economy": "economy", "business": "business"}
MONTH = "May"
CARD_NAMES = {
    "visa": "Visa card",
    "mastercard": "Mastercard",
    "amex": "Amex card",
    "discover": "Discover card",
}
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
ELITE = ("silver", "gold")
NEW_RESERVATION_PREFIX = "HATHA"

# --- words --------------------------------------------------------------------------------------


def _day(iso: str) -> str:
    """'2024-05-20' → 'May 20'."""
    return f"{MONTH} {int(iso[8:10])}"


def _city(code: str) -> str:
    return AIRPORT_CITIES.get(code, code)


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def _full_name(person: Record) -> str:
    return f"{person['first_name']} {person['last_name']}"


def _method_name(method: Record) -> str:
    """How a user names a payment method: card brand and digits, gift card digits, certificate value."""
    if method["source"] == "credit_card":
        return f"{CARD_NAMES.get(method['brand'], 'credit card')} ending in {method['last_four']}"
    if method["source"] == "gift_card":
        return f"gift card ending in {str(method['id'])[-4:]}"
    return f"${method['amount']} certificate"


def _sum_expression(amounts: Sequence[float]) -> str:
    """'300 + 50 - 20' for [300, 50, -20]."""
    return " + ".join(map(str, amounts)).replace("+ -", "- ")


def _legs(flights: Sequence[Record]) -> list[dict[str, str]]:
    return [{"flight_number": f["flight_number"], "date": f["date"]} for f in flights]


# --- context ------------------------------------------------------------------------------------


@dataclass
class Context(TaskBuilder):
    """An airline task under construction: the user's profile and reservations as they are now."""

    @property
    def user(self) -> Record:
        return self.view.get("users", self.user_id)

    def reservations(self) -> list[Record]:
        """The user's reservations that are not cancelled, in profile order (none booked in this task)."""
        found = [self.view.get("reservations", key) for key in self.user["reservations"]]
        return [
            r
            for r in found
            if r is not None
            and r.get("status") != "cancelled"
            and not r["reservation_id"].startswith(NEW_RESERVATION_PREFIX)
        ]

    def upcoming(self, reservation: Record) -> bool:
        """Whether every flight of the reservation can still be booked (all are in the future)."""
        return all(status == "available" for status in segment_statuses(self.view, reservation))

    def methods(self, *sources: str) -> list[Record]:
        """The user's payment methods of ``sources`` that the user can name unambiguously."""
        methods = list(self.user["payment_methods"].values())
        names = [_method_name(m) for m in methods]
        return [m for m, name in zip(methods, names) if names.count(name) == 1 and m["source"] in sources]


def _trip_key(reservation: Record) -> tuple[str, str, str]:
    return (reservation["origin"], reservation["destination"], reservation["flights"][0]["date"])


def _ref(ctx: Context, reservation: Record) -> Ref:
    """By id, or (sometimes) by route and date when no other reservation of the user shares them."""
    key = reservation["reservation_id"]
    every = (ctx.view.get("reservations", k) for k in ctx.user["reservations"])
    trips = [_trip_key(r) for r in every if r is not None]
    if trips.count(_trip_key(reservation)) != 1 or ctx.rng.random() < 0.7:
        return Ref(f"reservation {key}", (read(RESERVATION, reservation_id=key),))
    ids = ctx.user["reservations"]
    scans = tuple(read(RESERVATION, reservation_id=k) for k in ids[: ids.index(key) + 1])
    origin, destination, day = _trip_key(reservation)
    return Ref(f"trip from {_city(origin)} to {_city(destination)} on {_day(day)}", scans)


def _directions(reservation: Record) -> list[list[int]]:
    """Segment indices of each direction: one for a one-way trip, out and back for a round trip."""
    flights = reservation["flights"]
    indices = list(range(len(flights)))
    if reservation["flight_type"] != "round_trip":
        return [indices]
    turn = next((i for i, f in enumerate(flights) if f["destination"] == reservation["destination"]), None)
    return [indices] if turn is None else [indices[: turn + 1], indices[turn + 1 :]]


# --- choosing flights ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """Flights of one direction the user can describe unambiguously, with their prices and the search."""

    flights: tuple[Record, ...]
    text: str
    search: Action

    def prices(self, cabin: str) -> list[int]:
        return [f["prices"][cabin] for f in self.flights]


def _clock(flight: Record) -> str:
    return str(flight["scheduled_departure_time_est"])[:5]


def _direct_choices(
    ctx: Context, origin: str, destination: str, day: str, cabin: str, seats: int
) -> list[Choice]:
    found = ctx.search(SEARCH_DIRECT, origin=origin, destination=destination, date=day)
    search = read(SEARCH_DIRECT, origin=origin, destination=destination, date=day)
    times = [_clock(f) for f in found]
    return [
        Choice(({**f, "date": day},), f"the nonstop flight leaving at {_clock(f)}", search)
        for f in found
        if times.count(_clock(f)) == 1 and f["available_seats"][cabin] >= seats
    ]


def _onestop_choices(
    ctx: Context, origin: str, destination: str, day: str, cabin: str, seats: int
) -> list[Choice]:
    found = ctx.search(SEARCH_ONESTOP, origin=origin, destination=destination, date=day)
    search = read(SEARCH_ONESTOP, origin=origin, destination=destination, date=day)
    keys = [(pair[0]["destination"], _clock(pair[0])) for pair in found]
    return [
        Choice(tuple(pair), f"the connection through {_city(key[0])} leaving at {key[1]}", search)
        for pair, key in zip(found, keys)
        if keys.count(key) == 1 and all(f["available_seats"][cabin] >= seats for f in pair)
    ]


def _choose(ctx: Context, origin: str, destination: str, day: str, cabin: str, seats: int) -> Choice | None:
    """A nonstop flight when there is one to describe, else a one-stop connection."""
    choices = _direct_choices(ctx, origin, destination, day, cabin, seats)
    return ctx.pick(choices or _onestop_choices(ctx, origin, destination, day, cabin, seats))


# --- paying -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payment:
    methods: list[dict[str, Any]]
    mine: str
    yours: str


def _booking_payment(ctx: Context, total: int) -> Payment | None:
    """How the user pays a booking: one card, a gift card or a certificate, or one of those then a card."""
    cards = ctx.methods("credit_card")
    gifts = [m for m in ctx.methods("gift_card") if m["amount"] > 0]
    certificates = ctx.methods("certificate")
    plans: list[Payment] = []
    for card in cards:
        name = _method_name(card)
        plans.append(
            Payment([_pay(card, total)], f"Please charge it all to my {name}.", f"all on your {name}")
        )
        for first in [m for m in gifts + certificates if m["amount"] < total]:
            what = "the whole balance of my" if first["source"] == "gift_card" else "my"
            first_name = _method_name(first)
            methods = [_pay(first, first["amount"]), _pay(card, total - first["amount"])]
            mine = f"Please use {what} {first_name} first and put the rest on my {name}."
            plans.append(Payment(methods, mine, f"first with your {first_name}, the rest on your {name}"))
    for method in [m for m in gifts + certificates if m["amount"] >= total]:
        name = _method_name(method)
        plans.append(
            Payment([_pay(method, total)], f"Please pay it all with my {name}.", f"with your {name}")
        )
    return ctx.pick(plans)


def _pay(method: Record, amount: int) -> dict[str, Any]:
    return {"payment_id": method["id"], "amount": amount}


def _change_method(ctx: Context, amount: float) -> Record | None:
    """A credit card or a gift card (covering ``amount``) that pays or receives a change."""
    methods = ctx.methods("credit_card", "gift_card")
    return ctx.pick([m for m in methods if m["source"] == "credit_card" or m["amount"] >= amount])


# --- booking ------------------------------------------------------------------------------------


def _party(ctx: Context) -> tuple[list[Record], str, str]:
    """Who travels (the user and/or saved passengers), and how the user and the instruction say it."""
    user = ctx.user
    me = {**user["name"], "dob": user["dob"]}
    saved = [p for p in user["saved_passengers"] if _full_name(p) != _full_name(me)]
    companions = ctx.rng.sample(saved, min(len(saved), ctx.rng.choice((0, 0, 1, 1, 2))))
    with_me = not companions or ctx.rng.random() < 0.85
    people = ([me] if with_me else []) + companions
    if not companions:
        return people, "just me", "just you"
    names = [_full_name(p) for p in companions]
    saved_note = "saved in my profile" if len(companions) == 1 else "both saved in my profile"
    if with_me:
        mine, yours = join_words(["me", *names]), join_words(["you", *names])
        return people, f"{mine} ({saved_note})", f"{yours} (saved in your profile)"
    return (
        people,
        f"{join_words(names)} ({saved_note}), not me",
        f"{join_words(names)} (saved in your profile), not you",
    )


def _served(ctx: Context) -> list[str]:
    origins = {f["origin"] for _, f in ctx.view.items("flights")}
    return sorted(origins)


def _book(ctx: Context) -> Intent | None:
    rng = ctx.rng
    if not ctx.may_write(ctx.user_id, BOOK):
        return None
    origin, destination = rng.sample(_served(ctx), 2)
    round_trip = rng.random() < 0.45
    out_day = rng.choice(FUTURE_DAYS[:-4] if round_trip else FUTURE_DAYS)
    cabin = rng.choice(CABINS)
    people, party_mine, party_yours = _party(ctx)
    trip = _itinerary(ctx, origin, destination, out_day, round_trip, cabin, len(people))
    if trip is None:
        return None
    party = Party(people, party_mine, party_yours)
    bags = rng.randint(0, len(people) + 2)
    insured = rng.random() < 0.4
    payment = _booking_payment(ctx, trip.total(ctx, party, bags, insured))
    if payment is None:
        return None
    return _booking(ctx, trip, party, bags, insured, payment, rng.random() < 0.5)


@dataclass(frozen=True)
class Trip:
    """The flights of a booking: route, dates, cabin and the chosen flights of each direction."""

    origin: str
    destination: str
    out_day: str
    back_day: str
    cabin: str
    choices: list[Choice]

    @property
    def prices(self) -> list[int]:
        return [p for choice in self.choices for p in choice.prices(self.cabin)]

    def paid_bags(self, ctx: Context, party: Party, bags: int) -> int:
        return nonfree_bags(bags, len(party.people), ctx.user["membership"], self.cabin)

    def total(self, ctx: Context, party: Party, bags: int, insured: bool) -> int:
        count = len(party.people)
        fares = sum(self.prices) * count
        return fares + INSURANCE_FEE * count * insured + BAG_FEE * self.paid_bags(ctx, party, bags)


@dataclass(frozen=True)
class Party:
    """Who travels, and how the user and the instruction say it."""

    people: list[Record]
    mine: str
    yours: str


def _itinerary(
    ctx: Context, origin: str, destination: str, out_day: str, round_trip: bool, cabin: str, seats: int
) -> Trip | None:
    """Flights the user can describe, with ``seats`` free: out on ``out_day``, back 1-4 days later."""
    outbound = _choose(ctx, origin, destination, out_day, cabin, seats)
    if outbound is None:
        return None
    choices = [outbound]
    back_day = ""
    if round_trip:
        later = FUTURE_DAYS.index(outbound.flights[-1]["date"]) + ctx.rng.randint(1, 4)
        if later >= len(FUTURE_DAYS):
            return None
        back_day = FUTURE_DAYS[later]
        inbound = _choose(ctx, destination, origin, back_day, cabin, seats)
        if inbound is None:
            return None
        choices.append(inbound)
    return Trip(origin, destination, out_day, back_day, cabin, choices)


def _booking(
    ctx: Context, trip: Trip, party: Party, bags: int, insured: bool, payment: Payment, wants_total: bool
) -> Intent:
    """Booking ``trip`` for ``party``, as the user asks for it."""
    count, cabin, choices = len(party.people), trip.cabin, trip.choices
    round_trip = len(choices) > 1
    prices = trip.prices
    paid_bags = trip.paid_bags(ctx, party, bags)
    total = trip.total(ctx, party, bags, insured)
    fares = " + ".join(map(str, prices))
    terms = [fares if count == 1 else f"({fares}) * {count}" if len(prices) > 1 else f"{fares} * {count}"]
    terms += [f"{INSURANCE_FEE} * {count}"] if insured else []
    terms += [f"{BAG_FEE} * {paid_bags}"] if paid_bags else []
    calc = (read("calculate", expression=" + ".join(terms)),) if wants_total else ()
    kind = "round trip" if round_trip else "one-way trip"
    dates = f"on {_day(trip.out_day)}" + (f", coming back on {_day(trip.back_day)}" if round_trip else "")
    flights_text = f"For the way out I'd like {choices[0].text}" + (
        f", and for the way back {choices[1].text}." if round_trip else "."
    )
    bags_text = f"We will check {_count(bags, 'bag')} in total." if bags else "We have no checked bags."
    insurance_text = "I want travel insurance." if insured else "No travel insurance, please."
    arguments = {
        "user_id": ctx.user_id,
        "origin": trip.origin,
        "destination": trip.destination,
        "flight_type": "round_trip" if round_trip else "one_way",
        "cabin": cabin,
        "flights": _legs([f for choice in choices for f in choice.flights]),
        "passengers": [dict(p) for p in party.people],
        "payment_methods": payment.methods,
        "total_baggages": bags,
        "nonfree_baggages": paid_bags,
        "insurance": "yes" if insured else "no",
    }
    route = f"from {_city(trip.origin)} to {_city(trip.destination)}"
    return Intent(
        kind="book",
        subject=ctx.user_id,
        request=(
            f"I want to book a {kind} {route} in {CABIN_WORDS[cabin]} for {party.mine}, leaving {dates}. "
            f"{flights_text} {bags_text} {insurance_text} {payment.mine}"
            + (" What will the total price be?" if wants_total else "")
        ),
        goal=(
            f"book a {kind} {route} {dates} in {CABIN_WORDS[cabin]} for {party.yours}: "
            + join_words([c.text for c in choices])
            + f"; {_count(bags, 'checked bag') if bags else 'no checked bags'},"
            + f" {'with' if insured else 'no'} insurance, paying {payment.yours}"
            + (", and you want to know the total price" if wants_total else "")
        ),
        reads=(read(AIRPORTS), *(c.search for c in choices), *calc),
        writes=(Action(name=BOOK, arguments=arguments),),
        outputs=(money(total),) if wants_total else (),
        condition="If the agent asks for birth dates, you say they are in your profile.",
    )


# --- changing reservations ----------------------------------------------------------------------


def _changeable(ctx: Context, tool: str) -> list[Record]:
    """Upcoming reservations that ``tool`` may still change in this task."""
    return [r for r in ctx.reservations() if ctx.upcoming(r) and ctx.may_write(r["reservation_id"], tool)]


@dataclass(frozen=True)
class Move:
    """A direct segment of a reservation moved to another flight of the same route."""

    index: int
    choice: Choice
    flights: list[dict[str, str]]
    difference: int
    text: str


def _nonstop_legs(reservation: Record) -> list[int]:
    """Indices of the segments that make a whole direction of the trip on their own."""
    return [d[0] for d in _directions(reservation) if len(d) == 1]


def _move(ctx: Context, reservation: Record, index: int) -> Move | None:
    """Move segment ``index`` (alone in its direction) to a nonstop on another day, keeping the order."""
    if index not in _nonstop_legs(reservation):
        return None
    flights, segment = reservation["flights"], reservation["flights"][index]
    after = flights[index - 1]["date"] if index > 0 else TODAY
    before = flights[index + 1]["date"] if index + 1 < len(flights) else "9999"
    days = [d for d in FUTURE_DAYS if after < d < before and d != segment["date"]]
    day = ctx.pick(days)
    count = len(reservation["passengers"])
    choice = (
        _direct_choices(ctx, segment["origin"], segment["destination"], day, reservation["cabin"], count)
        if day
        else []
    )
    picked: Choice | None = ctx.pick(choice)
    if picked is None:
        return None
    new = picked.flights[0]
    legs = _legs(flights)
    legs[index] = {"flight_number": new["flight_number"], "date": day}
    difference = (new["prices"][reservation["cabin"]] - segment["price"]) * count
    way = "return" if reservation["flight_type"] == "round_trip" and index > 0 else "outbound"
    text = (
        f"move my {way} flight from {_city(segment['origin'])} to {_city(segment['destination'])} "
        f"to {_day(day)}, on {picked.text}"
    )
    return Move(index, picked, legs, difference, text)


def _change_flight(ctx: Context) -> Intent | None:
    candidates = [r for r in _changeable(ctx, CHANGE_FLIGHTS) if r["cabin"] != "basic_economy"]
    reservation = ctx.pick([r for r in candidates if _nonstop_legs(r)])
    if reservation is None:
        return None
    move = _move(ctx, reservation, ctx.pick(_nonstop_legs(reservation)))
    method = _change_method(ctx, move.difference) if move else None
    if move is None or method is None:
        return None
    return _flight_intent(ctx, reservation, move, method)


def _flight_intent(ctx: Context, reservation: Record, move: Move, method: Record) -> Intent:
    ref, name = _ref(ctx, reservation), _method_name(method)
    wants = move.difference != 0 and ctx.rng.random() < 0.5
    arguments = {
        "reservation_id": reservation["reservation_id"],
        "cabin": reservation["cabin"],
        "flights": move.flights,
        "payment_id": method["id"],
    }
    return Intent(
        kind="change_flight",
        subject=reservation["reservation_id"],
        request=(
            f"On {ref.mine}, I'd like to {move.text}. Please use my {name} for any fare difference."
            + (" How much is the fare difference?" if wants else "")
        ),
        goal=(
            f"on {ref.yours}, {move.text.replace('my ', 'your ')}, settling any difference with your {name}"
            + (", and you want to know the fare difference" if wants else "")
        ),
        reads=(*ref.reads, move.choice.search),
        writes=(Action(name=CHANGE_FLIGHTS, arguments=arguments),),
        outputs=(money(abs(move.difference)),) if wants else (),
        condition="You keep every other flight of the reservation as it is.",
    )


def _segment_price(ctx: Context, segment: Record, cabin: str, seats: int) -> tuple[int, Action] | None:
    """Today's price of a booked segment in ``cabin`` (if it has the seats), and the search that shows it."""
    args = {"origin": segment["origin"], "destination": segment["destination"], "date": segment["date"]}
    for flight in ctx.search(SEARCH_DIRECT, **args):
        if flight["flight_number"] == segment["flight_number"] and flight["available_seats"][cabin] >= seats:
            return int(flight["prices"][cabin]), read(SEARCH_DIRECT, **args)
    return None


def _change_cabin(ctx: Context) -> Intent | None:
    reservation = ctx.pick(_changeable(ctx, CHANGE_FLIGHTS))
    if reservation is None:
        return None
    cabin = ctx.pick([c for c in CABINS if c != reservation["cabin"]])
    count = len(reservation["passengers"])
    priced = [_segment_price(ctx, s, cabin, count) for s in reservation["flights"]]
    if any(p is None for p in priced):
        return None
    new_prices = [p[0] for p in priced if p is not None]
    old_prices = [s["price"] for s in reservation["flights"]]
    difference = (sum(new_prices) - sum(old_prices)) * count
    method = _change_method(ctx, difference)
    if method is None:
        return None
    ref, name = _ref(ctx, reservation), _method_name(method)
    up = CABINS.index(cabin) > CABINS.index(reservation["cabin"])
    verb = "upgrade" if up else "downgrade"
    wants = difference != 0 and ctx.rng.random() < 0.6
    calc = f"({' + '.join(map(str, new_prices))} - ({' + '.join(map(str, old_prices))})) * {count}"
    arguments = {
        "reservation_id": reservation["reservation_id"],
        "cabin": cabin,
        "flights": _legs(reservation["flights"]),
        "payment_id": method["id"],
    }
    searches = [p[1] for p in priced if p is not None]
    return Intent(
        kind="change_cabin",
        subject=reservation["reservation_id"],
        request=(
            f"I'd like to {verb} {ref.mine} to {CABIN_WORDS[cabin]} on every flight, same flights and "
            f"passengers. Use my {name} for the price difference."
            + (" How much is the difference?" if wants else "")
        ),
        goal=(
            f"{verb} {ref.yours} to {CABIN_WORDS[cabin]} for every flight and passenger, settling the "
            f"difference with your {name}" + (", and you want to know the difference" if wants else "")
        ),
        reads=(*ref.reads, *searches, *((read("calculate", expression=calc),) if wants else ())),
        writes=(Action(name=CHANGE_FLIGHTS, arguments=arguments),),
        outputs=(money(abs(difference)),) if wants else (),
        condition=EXACT_FIGURE if wants else None,
    )


def _add_bags(ctx: Context) -> Intent | None:
    reservation = ctx.pick(_changeable(ctx, CHANGE_BAGS))
    if reservation is None:
        return None
    added = ctx.rng.choice((1, 1, 2, 3))
    fee = _bag_fee(ctx, reservation, added)
    method = _change_method(ctx, fee) if fee >= 0 else None
    if method is None:
        return None
    ref = _ref(ctx, reservation)
    return _bags_request(ctx, reservation, ref, added, method, fee > 0 and ctx.rng.random() < 0.5)


def _paid_bags(ctx: Context, reservation: Record, added: int) -> int:
    total = reservation["total_baggages"] + added
    return nonfree_bags(total, len(reservation["passengers"]), ctx.user["membership"], reservation["cabin"])


def _bag_fee(ctx: Context, reservation: Record, added: int) -> int:
    return BAG_FEE * (_paid_bags(ctx, reservation, added) - reservation["nonfree_baggages"])


def _bags_request(
    ctx: Context, reservation: Record, ref: Ref, added: int, method: Record, wants: bool
) -> Intent:
    """Adding ``added`` checked bags to ``reservation``, paid with ``method`` (``wants``: hear the fee)."""
    arguments = {
        "reservation_id": reservation["reservation_id"],
        "total_baggages": reservation["total_baggages"] + added,
        "nonfree_baggages": _paid_bags(ctx, reservation, added),
        "payment_id": method["id"],
    }
    bags, name = _count(added, "checked bag"), _method_name(method)
    return Intent(
        kind="add_bags",
        subject=reservation["reservation_id"],
        request=(
            f"Please add {bags} to {ref.mine}. If there is a fee, use my {name}."
            + (" How much will the extra bags cost?" if wants else "")
        ),
        goal=(
            f"add {bags} to {ref.yours}, paying any fee with your {name}"
            + (", and you want to know the fee" if wants else "")
        ),
        reads=ref.reads,
        writes=(Action(name=CHANGE_BAGS, arguments=arguments),),
        outputs=(money(_bag_fee(ctx, reservation, added)),) if wants else (),
    )


def _fix_passenger(ctx: Context) -> Intent | None:
    reservation = ctx.pick(_changeable(ctx, CHANGE_PASSENGERS))
    if reservation is None:
        return None
    passengers = [dict(p) for p in reservation["passengers"]]
    names = [_full_name(p) for p in passengers]
    index = ctx.rng.randrange(len(passengers))
    old = passengers[index]
    if names.count(_full_name(old)) != 1:
        return None
    spare = [p for p in ctx.user["saved_passengers"] if _full_name(p) not in names]
    ref = _ref(ctx, reservation)
    if spare and ctx.rng.random() < 0.5:
        new = dict(ctx.pick(spare))
        said = (
            f"{_full_name(old)} can't travel on {ref.mine}; "
            f"{_full_name(new)} (saved in my profile) will fly instead."
        )
        meant = (
            f"have {_full_name(new)} (saved in your profile) fly instead of {_full_name(old)} on {ref.yours}"
        )
    else:
        year, month, day = int(old["dob"][:4]), ctx.rng.randint(1, 12), ctx.rng.randint(1, 28)
        new = {**old, "dob": f"{year:04d}-{month:02d}-{day:02d}"}
        if new == old:
            return None
        when = f"{_month_name(month)} {day}, {year}"
        said = f"The date of birth of {_full_name(old)} on {ref.mine} is wrong: it should be {when}."
        meant = f"correct the date of birth of {_full_name(old)} on {ref.yours} to {when}"
    passengers[index] = new
    arguments = {"reservation_id": reservation["reservation_id"], "passengers": passengers}
    return Intent(
        kind="change_passenger",
        subject=reservation["reservation_id"],
        request=said,
        goal=meant,
        reads=ref.reads,
        writes=(Action(name=CHANGE_PASSENGERS, arguments=arguments),),
        condition="Every other passenger stays as booked.",
    )


def _month_name(month: int) -> str:
    return MONTHS[month - 1]


# --- cancelling ---------------------------------------------------------------------------------

COVERED = (
    ("I have come down with the flu and my doctor told me not to travel", "you are sick with the flu"),
    ("a big snowstorm is forecast at my destination", "a snowstorm is forecast at your destination"),
    ("I injured my leg in an accident and can't travel", "you injured your leg in an accident"),
)
UNCOVERED = ("my plans have changed", "I found a cheaper flight elsewhere", "my meeting was moved")


def _cancel_reasons(ctx: Context, reservation: Record) -> list[tuple[str, str]]:
    """Reasons the policy accepts for cancelling this reservation: what the user says, what they are told."""
    reasons = []
    if booked_within_window(reservation["created_at"]):
        when = "earlier today" if reservation["created_at"][:10] == TODAY else "yesterday"
        reasons.append((f"I only booked it {when} and I have changed my mind", f"you booked it {when}"))
    if reservation["cabin"] == "business":
        reasons.append(("I no longer need it", "you no longer need it"))
    if airline_cancelled(ctx.view, reservation):
        reasons.append(
            ("the airline cancelled one of its flights", "the airline cancelled one of its flights")
        )
    if reservation["insurance"] == "yes":
        reasons.append(ctx.pick(COVERED))
    return reasons


def _cancellable(ctx: Context) -> list[Record]:
    return [
        r for r in ctx.reservations() if not flown(ctx.view, r) and ctx.may_write(r["reservation_id"], CANCEL)
    ]


def _cancel(ctx: Context) -> Intent | None:
    reservation = ctx.pick([r for r in _cancellable(ctx) if _cancel_reasons(ctx, r)])
    if reservation is None:
        return None
    said, meant = ctx.pick(_cancel_reasons(ctx, reservation))
    ref = _ref(ctx, reservation)
    amounts = [p["amount"] for p in reservation["payment_history"]]
    wants = ctx.rng.random() < 0.4 and sum(amounts) > 0
    calc = (read("calculate", expression=_sum_expression(amounts)),) if wants and len(amounts) > 1 else ()
    return Intent(
        kind="cancel",
        subject=reservation["reservation_id"],
        request=f"Please cancel {ref.mine}: {said}." + (" How much will be refunded?" if wants else ""),
        goal=f"cancel {ref.yours} because {meant}" + (", and you want to know the refund" if wants else ""),
        reads=(*ref.reads, *calc),
        writes=(Action(name=CANCEL, arguments={"reservation_id": reservation["reservation_id"]}),),
        outputs=(money(sum(amounts)),) if wants else (),
        condition=f"If the agent asks why, you explain that {meant}.",
    )


def _transfer_flown(ctx: Context) -> Intent | None:
    """Cancelling a trip that is partly flown is out of scope: the agent transfers the user (last intent)."""
    if not ctx.last:
        return None
    used = [
        r for r in ctx.reservations() if flown(ctx.view, r) and "available" in segment_statuses(ctx.view, r)
    ]
    reservation = ctx.pick([r for r in used if ctx.fresh(r["reservation_id"])])
    if reservation is None:
        return None
    ref, key = _ref(ctx, reservation), reservation["reservation_id"]
    summary = (
        f"User {ctx.user_id} wants to cancel reservation {key}, but part of the trip has already been flown."
    )
    return Intent(
        kind="transfer_flown",
        subject=key,
        request=f"I already flew the first part of {ref.mine}, but I need to cancel the rest of the trip.",
        goal=f"cancel the rest of {ref.yours}, whose first flight you have already taken",
        reads=(*ref.reads, Action(name=TRANSFER, arguments={"summary": summary})),
        condition="If the agent transfers you to a human agent, you accept.",
    )


# --- compensation -------------------------------------------------------------------------------


def _compensable(ctx: Context, reservation: Record) -> bool:
    """Whether the user or the reservation qualifies for a compensation certificate."""
    return (
        ctx.user["membership"] in ELITE
        or reservation["insurance"] == "yes"
        or reservation["cabin"] == "business"
    )


def _certificate(ctx: Context, amount: int) -> Action:
    return Action(name=SEND_CERTIFICATE, arguments={"user_id": ctx.user_id, "amount": amount})


def _compensate_cancelled(ctx: Context) -> Intent | None:
    if not ctx.may_write(ctx.user_id, SEND_CERTIFICATE):
        return None
    hit = [r for r in ctx.reservations() if "cancelled" in segment_statuses(ctx.view, r)]
    reservation = ctx.pick([r for r in hit if _compensable(ctx, r) and ctx.fresh(r["reservation_id"])])
    if reservation is None:
        return None
    ref = _ref(ctx, reservation)
    amount = CANCELLED_FLIGHT_CREDIT * len(reservation["passengers"])
    return Intent(
        kind="compensate_cancelled",
        subject=reservation["reservation_id"],
        request=(
            f"The airline cancelled one of the flights of {ref.mine} and it ruined my plans. "
            "I'd like some compensation for that. How much will I get?"
        ),
        goal=f"get compensation because the airline cancelled a flight of {ref.yours}, and know its amount",
        reads=ref.reads,
        writes=(_certificate(ctx, amount),),
        outputs=(money(amount),),
        condition="You accept a travel certificate as compensation.",
    )


def _compensate_delayed(ctx: Context) -> Intent | None:
    """A delayed flight today: the user changes or cancels the trip, then asks for compensation."""
    if not ctx.may_write(ctx.user_id, SEND_CERTIFICATE):
        return None
    late = [
        r
        for r in _cancellable(ctx)
        if "delayed" in segment_statuses(ctx.view, r)
        and _compensable(ctx, r)
        and ctx.fresh(r["reservation_id"])
    ]
    reservation = ctx.pick(late)
    if reservation is None:
        return None
    ref = _ref(ctx, reservation)
    amount = DELAYED_FLIGHT_CREDIT * len(reservation["passengers"])
    delayed = segment_statuses(ctx.view, reservation).index("delayed")
    number = reservation["flights"][delayed]["flight_number"]
    settle = _delay_settlement(ctx, reservation, delayed)
    if settle is None:
        return None
    action, said, meant = settle
    return Intent(
        kind="compensate_delayed",
        subject=reservation["reservation_id"],
        request=(
            f"My flight {number} today on {ref.mine} is badly delayed. {said} "
            "I also want compensation for the delay. How much will I get?"
        ),
        goal=f"{meant} because flight {number} is delayed today, and get compensation for the delay",
        reads=ref.reads + ((action[1],) if action[1] else ()),
        writes=(action[0], _certificate(ctx, amount)),
        outputs=(money(amount),),
        condition="You accept a travel certificate as compensation.",
    )


def _delay_settlement(
    ctx: Context, reservation: Record, delayed: int
) -> tuple[tuple[Action, Action | None], str, str] | None:
    """Cancel the trip when the policy allows it, else move the delayed flight to a later day."""
    key = reservation["reservation_id"]
    if eligible_without_insurance(ctx.view, reservation) and ctx.rng.random() < 0.6:
        cancel = Action(name=CANCEL, arguments={"reservation_id": key})
        return (cancel, None), "Please cancel the whole trip.", f"cancel {key}"
    if reservation["cabin"] == "basic_economy" or not ctx.may_write(key, CHANGE_FLIGHTS):
        return None
    move = _move(ctx, reservation, delayed)
    method = _change_method(ctx, move.difference) if move else None
    if move is None or method is None:
        return None
    arguments = {
        "reservation_id": key,
        "cabin": reservation["cabin"],
        "flights": move.flights,
        "payment_id": method["id"],
    }
    name = _method_name(method)
    change = Action(name=CHANGE_FLIGHTS, arguments=arguments)
    said = f"Rather than wait, please {move.text}, and use my {name} for any fare difference."
    return (change, move.choice.search), said, f"{move.text.replace('my ', 'your ')}"


# --- refusals -----------------------------------------------------------------------------------


def _refusal(
    ctx: Context,
    kind: str,
    reservation: Record,
    attempt: Action,
    said: str,
    meant: str,
    why: str,
    rules: Sequence[str],
) -> Intent | None:
    """A request the policy forbids: the reads that show it, no write, and the reason to decline."""
    ref = _ref(ctx, reservation)
    request = said.format(ref=ref.mine)
    if not ctx.fresh(reservation["reservation_id"]) or not ctx.forbidden(attempt, request, rules):
        return None
    return Intent(
        kind=kind,
        subject=reservation["reservation_id"],
        request=request,
        goal=meant.format(ref=ref.yours),
        reads=ref.reads,
        refuse=why.format(id=reservation["reservation_id"]),
        attempt=attempt,
        condition=ACCEPT_REFUSAL,
    )


def _refuse_cancel(ctx: Context) -> Intent | None:
    reservation = ctx.pick(
        [r for r in _cancellable(ctx) if ctx.upcoming(r) and not eligible_without_insurance(ctx.view, r)]
    )
    if reservation is None:
        return None
    reason = ctx.pick(UNCOVERED)
    why = (
        "reservation {id} was booked more than 24 hours ago, is not in business class"
        " and none of its flights was cancelled by the airline"
    )
    why += (
        "; its travel insurance covers only health or weather reasons."
        if reservation["insurance"] == "yes"
        else ", and it has no travel insurance."
    )
    attempt = Action(name=CANCEL, arguments={"reservation_id": reservation["reservation_id"]})
    return _refusal(
        ctx,
        "refuse_cancel",
        reservation,
        attempt,
        f"Please cancel {{ref}} and refund me: {reason}.",
        f"cancel {{ref}} and get a refund because {reason.replace('my ', 'your ').replace('I ', 'you ')}",
        why,
        ("airline.cancellation_eligibility", "airline.insurance_reason_covered"),
    )


def _refuse_basic_economy_change(ctx: Context) -> Intent | None:
    reservation = ctx.pick(
        [r for r in ctx.reservations() if ctx.upcoming(r) and r["cabin"] == "basic_economy"]
    )
    if reservation is None:
        return None
    segment = reservation["flights"][0]
    day = ctx.pick([d for d in FUTURE_DAYS if d != segment["date"]])
    legs = _legs(reservation["flights"])
    legs[0] = {"flight_number": segment["flight_number"], "date": day}
    attempt = Action(
        name=CHANGE_FLIGHTS,
        arguments={
            "reservation_id": reservation["reservation_id"],
            "cabin": "basic_economy",
            "flights": legs,
            "payment_id": "",
        },
    )
    return _refusal(
        ctx,
        "refuse_basic_economy_change",
        reservation,
        attempt,
        f"I'd like to move the first flight of {{ref}} to {_day(day)}.",
        f"move the first flight of {{ref}} to {_day(day)}",
        "reservation {id} is in basic economy, and basic economy flights cannot be changed.",
        ("airline.basic_economy_no_flight_change",),
    )


def _refuse_bag_removal(ctx: Context) -> Intent | None:
    reservation = ctx.pick([r for r in ctx.reservations() if r["total_baggages"] > 0 and ctx.upcoming(r)])
    if reservation is None:
        return None
    total = reservation["total_baggages"] - 1
    arguments = {
        "reservation_id": reservation["reservation_id"],
        "total_baggages": total,
        "nonfree_baggages": min(total, reservation["nonfree_baggages"]),
        "payment_id": "",
    }
    return _refusal(
        ctx,
        "refuse_bag_removal",
        reservation,
        Action(name=CHANGE_BAGS, arguments=arguments),
        "Please remove one checked bag from {ref} and refund me for it.",
        "remove one checked bag from {ref} and get a refund for it",
        "checked bags can be added to a reservation but never removed.",
        ("airline.no_baggage_removal",),
    )


def _refuse_passenger_removal(ctx: Context) -> Intent | None:
    reservation = ctx.pick([r for r in ctx.reservations() if len(r["passengers"]) > 1 and ctx.upcoming(r)])
    if reservation is None:
        return None
    leaving = reservation["passengers"][-1]
    arguments = {
        "reservation_id": reservation["reservation_id"],
        "passengers": reservation["passengers"][:-1],
    }
    return _refusal(
        ctx,
        "refuse_passenger_removal",
        reservation,
        Action(name=CHANGE_PASSENGERS, arguments=arguments),
        f"{_full_name(leaving)} is not coming anymore, so please take them off {{ref}}.",
        f"remove {_full_name(leaving)} from {{ref}}",
        "the number of passengers on a reservation cannot change.",
        ("airline.passenger_count_fixed",),
    )


def _refuse_insurance_later(ctx: Context) -> Intent | None:
    reservation = ctx.pick([r for r in ctx.reservations() if r["insurance"] == "no" and ctx.upcoming(r)])
    if reservation is None:
        return None
    rebooking = {
        key: reservation[key]
        for key in ("user_id", "origin", "destination", "flight_type", "cabin", "passengers")
    }
    arguments = {
        **rebooking,
        "flights": _legs(reservation["flights"]),
        "payment_methods": [],
        "total_baggages": reservation["total_baggages"],
        "nonfree_baggages": reservation["nonfree_baggages"],
        "insurance": "yes",
    }
    return _refusal(
        ctx,
        "refuse_insurance_later",
        reservation,
        Action(name=BOOK, arguments=arguments),
        "I'd like to add travel insurance to {ref}.",
        "add travel insurance to {ref}",
        "travel insurance can only be bought together with a new booking, not added to reservation {id}.",
        ("airline.insurance_only_at_booking",),
    )


def _refuse_destination_change(ctx: Context) -> Intent | None:
    one_way = [
        r
        for r in ctx.reservations()
        if r["flight_type"] == "one_way"
        and len(r["flights"]) == 1
        and r["cabin"] != "basic_economy"
        and ctx.upcoming(r)
    ]
    reservation = ctx.pick(one_way)
    if reservation is None:
        return None
    segment = reservation["flights"][0]
    other = ctx.pick(
        sorted(
            (f["flight_number"], f["destination"])
            for _, f in ctx.view.items("flights")
            if f["origin"] == segment["origin"] and f["destination"] != segment["destination"]
        )
    )
    if other is None:
        return None
    arguments = {
        "reservation_id": reservation["reservation_id"],
        "cabin": reservation["cabin"],
        "flights": [{"flight_number": other[0], "date": segment["date"]}],
        "payment_id": "",
    }
    return _refusal(
        ctx,
        "refuse_destination_change",
        reservation,
        Action(name=CHANGE_FLIGHTS, arguments=arguments),
        f"For {{ref}}, I'd rather fly to {_city(other[1])} instead of {_city(segment['destination'])}.",
        f"fly to {_city(other[1])} instead of {_city(segment['destination'])} on {{ref}}",
        "the origin, destination and trip type of reservation {id} cannot change.",
        ("airline.same_origin_destination_trip_type",),
    )


def _refuse_compensation(ctx: Context) -> Intent | None:
    hit = [
        r
        for r in ctx.reservations()
        if "cancelled" in segment_statuses(ctx.view, r) and not _compensable(ctx, r)
    ]
    reservation = ctx.pick(hit)
    if reservation is None:
        return None
    amount = CANCELLED_FLIGHT_CREDIT * len(reservation["passengers"])
    return _refusal(
        ctx,
        "refuse_compensation",
        reservation,
        _certificate(ctx, amount),
        "The airline cancelled a flight of {ref}. I want compensation for that.",
        "get compensation because the airline cancelled a flight of {ref}",
        "compensation goes only to silver and gold members, insured trips or business class, "
        "and reservation {id} has none of these.",
        ("airline.compensation_eligibility_and_amount",),
    )


# --- information --------------------------------------------------------------------------------


def _gift_card_total(ctx: Context) -> Intent | None:
    cards = [m for m in ctx.user["payment_methods"].values() if m["source"] == "gift_card"]
    if len(cards) < 2 or not ctx.fresh("gift cards"):
        return None
    amounts = [m["amount"] for m in cards]
    return info_intent(
        "info_gift_card_total",
        "gift cards",
        "What is the total balance of all my gift cards?",
        "know the total balance of all your gift cards",
        (read("calculate", expression=_sum_expression(amounts)),),
        money(sum(amounts)),
    )


def _reservation_paid(ctx: Context) -> Intent | None:
    reservation = ctx.pick([r for r in ctx.reservations() if ctx.fresh(r["reservation_id"])])
    if reservation is None:
        return None
    amounts = [p["amount"] for p in reservation["payment_history"]]
    ref = _ref(ctx, reservation)
    calc = (read("calculate", expression=_sum_expression(amounts)),) if len(amounts) > 1 else ()
    return info_intent(
        "info_reservation_paid",
        reservation["reservation_id"],
        f"How much have I paid in total for {ref.mine}?",
        f"know how much you have paid in total for {ref.yours}",
        (*ref.reads, *calc),
        money(sum(amounts)),
    )


def _free_bags(ctx: Context) -> Intent | None:
    reservation = ctx.pick([r for r in ctx.reservations() if ctx.fresh(r["reservation_id"])])
    if reservation is None:
        return None
    free = len(reservation["passengers"]) * free_bags(ctx.user["membership"], reservation["cabin"])
    if free < 2:
        return None
    ref = _ref(ctx, reservation)
    return info_intent(
        "info_free_bags",
        reservation["reservation_id"],
        f"How many checked bags in total can we bring for free on {ref.mine}?",
        f"know how many checked bags in total can go for free on {ref.yours}",
        ref.reads,
        str(free),
    )


def _cheapest_fare(ctx: Context) -> Intent | None:
    origin, destination = ctx.rng.sample(_served(ctx), 2)
    day, cabin = ctx.rng.choice(FUTURE_DAYS), ctx.rng.choice(CABINS)
    found = ctx.search(SEARCH_DIRECT, origin=origin, destination=destination, date=day)
    subject = f"{origin}-{destination}-{day}"
    if not found or not ctx.fresh(subject):
        return None
    cheapest = min(f["prices"][cabin] for f in found)
    route = f"from {_city(origin)} to {_city(destination)} on {_day(day)}"
    return info_intent(
        "info_cheapest_fare",
        subject,
        f"What is the cheapest nonstop {CABIN_WORDS[cabin]} fare {route}?",
        f"know the cheapest nonstop {CABIN_WORDS[cabin]} fare {route} (you do not book it)",
        (read(AIRPORTS), read(SEARCH_DIRECT, origin=origin, destination=destination, date=day)),
        money(cheapest),
    )


# --- late context -------------------------------------------------------------------------------

CAUTIONS = (
    ("my doctor may want to see me again around then", "your doctor may want to see you again around then"),
    ("my father has been unwell lately", "your father has been unwell lately"),
    (
        "the weather there can be rough at this time of year",
        "the weather there can be rough at that time of year",
    ),
)
"""Facts that make a traveller want insurance after all: what the user says, what they are told."""


def _late_booking(ctx: Context, companion: bool) -> Late | None:
    """A booking the user first asks for alone and uninsured; when asked to confirm, they say a saved
    passenger comes along (``companion``) or mention a worry that makes them want insurance."""
    if not ctx.may_write(ctx.user_id, BOOK):
        return None
    me = {**ctx.user["name"], "dob": ctx.user["dob"]}
    saved = [p for p in ctx.user["saved_passengers"] if _full_name(p) != _full_name(me)]
    other = ctx.pick(saved) if companion else None
    card = ctx.pick(ctx.methods("credit_card"))
    if (companion and other is None) or card is None:
        return None
    origin, destination = ctx.rng.sample(_served(ctx), 2)
    round_trip = ctx.rng.random() < 0.45
    out_day = ctx.rng.choice(FUTURE_DAYS[:-4] if round_trip else FUTURE_DAYS)
    trip = _itinerary(ctx, origin, destination, out_day, round_trip, ctx.rng.choice(CABINS), 2)
    if trip is None:
        return None
    bags = ctx.rng.randint(0, 2)
    card_name = _method_name(card)

    def booking(party: Party, insured: bool) -> Intent:
        total = trip.total(ctx, party, bags, insured)
        mine, yours = f"Please charge it all to my {card_name}.", f"all on your {card_name}"
        return _booking(ctx, trip, party, bags, insured, Payment([_pay(card, total)], mine, yours), False)

    alone = Party([me], "just me", "just you")
    if other is not None:
        who = _full_name(other)
        both = Party(
            [me, dict(other)], f"me and {who} (saved in my profile)", f"you and {who} (saved in your profile)"
        )
        return Late(
            first=booking(alone, False),
            final=booking(both, False),
            said=f"Oh wait, I forgot to mention: {who} is coming with me, so please book it for both of us. "
            f"{who} is saved in my profile.",
            meant=f"you mention that {who} (saved in your profile) is coming with you, "
            "so the booking must be for both of you",
        )
    said, meant = ctx.rng.choice(CAUTIONS)
    return Late(
        first=booking(alone, False),
        final=booking(alone, True),
        said=f"Before you book it, one thing I should have said: {said}, so I'd like travel insurance on it.",
        meant=f"you mention that {meant}, so you want travel insurance on the booking",
    )


def _late_companion(ctx: Context) -> Late | None:
    return _late_booking(ctx, companion=True)


def _late_insurance(ctx: Context) -> Late | None:
    return _late_booking(ctx, companion=False)


def _late_more_bags(ctx: Context) -> Late | None:
    """Bags added to a reservation: when asked to confirm, the user says they bring one more."""
    reservation = ctx.pick(_changeable(ctx, CHANGE_BAGS))
    method = ctx.pick(ctx.methods("credit_card"))
    if reservation is None or method is None:
        return None
    ref, added = _ref(ctx, reservation), ctx.rng.choice((1, 1, 2))
    more = _count(added + 1, "bag")
    return Late(
        first=_bags_request(ctx, reservation, ref, added, method, False),
        final=_bags_request(ctx, reservation, ref, added + 1, method, False),
        said=f"Sorry, one more thing: my partner is packing a bag too, so please add {more} in total.",
        meant=f"you mention that your partner is bringing a bag too, so {more} must be added in total",
    )


LATE: tuple[Callable[[Context], Late | None], ...] = (_late_companion, _late_insurance, _late_more_bags)
"""Builders of late context: facts the user reveals when asked to confirm, changing the write."""


# --- walks --------------------------------------------------------------------------------------

Builder = Callable[[Context], "Intent | None"]

FAMILIES: dict[str, tuple[Builder, ...]] = {
    BOOK: (_book,),
    CHANGE_FLIGHTS: (_change_flight, _change_cabin),
    CHANGE_BAGS: (_add_bags,),
    CHANGE_PASSENGERS: (_fix_passenger,),
    CANCEL: (_cancel,),
    SEND_CERTIFICATE: (_compensate_cancelled, _compensate_delayed),
    TRANSFER: (_transfer_flown,),
    "calculate": (_gift_card_total, _reservation_paid),
    RESERVATION: (_free_bags, _reservation_paid),
    SEARCH_DIRECT: (_cheapest_fare,),
}
"""Valid-intent builders by the tool a walk ends at."""
REFUSALS: dict[str, tuple[Builder, ...]] = {
    CANCEL: (_refuse_cancel,),
    CHANGE_FLIGHTS: (_refuse_basic_economy_change, _refuse_destination_change),
    CHANGE_BAGS: (_refuse_bag_removal,),
    CHANGE_PASSENGERS: (_refuse_passenger_removal,),
    BOOK: (_refuse_insurance_later,),
    SEND_CERTIFICATE: (_refuse_compensation,),
}
"""Builders of a request for the walk's write that the policy forbids in the user's state."""
REFUSAL_SHARE = 0.15
TARGET_WEIGHTS = {
    CANCEL: 1.5,
    CHANGE_FLIGHTS: 2.0,
    SEND_CERTIFICATE: 4.0,
    TRANSFER: 2.5,
    CHANGE_BAGS: 0.7,
    CHANGE_PASSENGERS: 0.8,
    "calculate": 0.5,
    SEARCH_ONESTOP: 0.3,
}
"""Relative weight of stepping to a tool (default 1)."""
FROM_PROFILE = {RESERVATION: 6.0, BOOK: 1.1, SEND_CERTIFICATE: 1.0, "calculate": 0.5}
"""Weights of the first step from the profile; writes reached straight from it weigh 0.3."""
STOP_PROBABILITY = {RESERVATION: 0.1, "calculate": 0.8, SEARCH_DIRECT: 0.5}
AIRPORTS_START = 0.12
MULTI_WRITE_SHARE = 0.35
REFUSAL_TASK_SHARE = 0.15
MIX = IntentMix(FAMILIES, REFUSALS, REFUSAL_SHARE, MULTI_WRITE_SHARE, REFUSAL_TASK_SHARE, late=LATE)
"""How this domain mixes its intents."""


def _step_weight(source: str, target: str) -> float:
    if source == PROFILE:
        return FROM_PROFILE.get(target, 0.3)
    return TARGET_WEIGHTS.get(target, 1.0)


def walk(rng: random.Random, start: str) -> list[str]:
    """A weighted random walk on :data:`API_GRAPH` from ``start``: the tools it visits, in order."""
    return API_GRAPH.walk(
        rng,
        start,
        weight=_step_weight,
        stop=lambda tool: STOP_PROBABILITY.get(tool, 0.0),
    )


def _draw_intent(ctx: Context, need: Need, tries: int = 16) -> Intent | None:
    """An intent reached by a walk, resampling walks that lead nowhere valid."""

    def family(need: Need) -> str:
        start = AIRPORTS if need is None and ctx.rng.random() < AIRPORTS_START else PROFILE
        return walk(ctx.rng, start)[-1]

    return MIX.draw(ctx, need, family, tries)


# --- tasks --------------------------------------------------------------------------------------


def build_task(
    database: Database, rng: random.Random, user_id: str, twist: TwistKind | None = None
) -> Task | None:
    """One task for ``user_id`` (its id and meta are completed by the caller), or None.

    The user says who they are in their first request (the airline has no look-up tool).
    """
    ctx = Context.start(DOMAIN, database, rng, user_id, subject_key="reservation_id")
    profile = read(PROFILE, user_id=user_id)
    says = f"My user id is {user_id}."
    identity = Identity(profile, {"user_id": user_id}, f"Your user id is {user_id}.", says)
    if ctx.execute([profile]) is None:
        return None
    return ctx.build(identity, MIX.plan(rng, twist), lambda need: _draw_intent(ctx, need), MIX.late)


SAMPLER = DomainSampler("airline", SPLITS, build_task)
sample_tasks = SAMPLER.sample
main = SAMPLER.main


if __name__ == "__main__":
    raise SystemExit(main())
