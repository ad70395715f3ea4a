"""The travel world's records: look-ups, validated plans for every priced write, and record builders.

A *plan* checks a request against a state (read-only) and prices it; a write tool applies the plan,
a rule re-plans the attempted call on ``step.before`` to judge it, and the sampler plans the gold
actions it proposes. Invalid requests raise :class:`ToolError` with the message the agent will see.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from apigen_gym.core.database import Database, Record, StateView
from apigen_gym.core.tools import ToolError
from apigen_gym.domains.travel import terms

TABLES = ("users", "airports", "flights", "hotels", "cars", "trips", "exchange_rates")
"""The travel database's tables."""
OPEN_STATUSES = ("booked", "in_progress")
"""Trips that can still be changed."""
ACTIVE = "booked"
CANCELLED = "cancelled"


# --- look-ups -----------------------------------------------------------------------------------


def _record(view: StateView, table: str, key: Any, what: str) -> Record:
    found = view.get(table, key) if isinstance(key, str) else None
    if found is None:
        raise ToolError(f"{what} {key} not found")
    return found  # type: ignore[no-any-return]


def get_user(view: StateView, user_id: str) -> Record:
    return _record(view, "users", user_id, "user")


def get_trip(view: StateView, trip_id: str) -> Record:
    return _record(view, "trips", trip_id, "trip")


def get_airport(view: StateView, code: str) -> Record:
    return _record(view, "airports", str(code).upper(), "airport")


def get_flight(view: StateView, flight_number: str) -> Record:
    return _record(view, "flights", str(flight_number).upper(), "flight")


def get_hotel(view: StateView, hotel_id: str) -> Record:
    return _record(view, "hotels", hotel_id, "hotel")


def get_car(view: StateView, car_id: str) -> Record:
    return _record(view, "cars", car_id, "car offer")


def trip_owner(view: StateView, trip: Record) -> Record:
    return get_user(view, trip["user_id"])


def traveller(user: Record, traveller_id: Any) -> Record:
    found = user["travellers"].get(traveller_id) if isinstance(traveller_id, str) else None
    if found is None:
        raise ToolError(f"traveller {traveller_id} is not saved in the profile of {user['user_id']}")
    return found  # type: ignore[no-any-return]


def payment_method(user: Record, method_id: Any) -> Record:
    found = user["payment_methods"].get(method_id) if isinstance(method_id, str) else None
    if found is None:
        raise ToolError(f"payment method {method_id} not found in the profile of {user['user_id']}")
    return found  # type: ignore[no-any-return]


def payment_problem(method: Record, amount: float) -> str | None:
    """Why ``method`` cannot pay ``amount`` now (expired or short travel credit), else ``None``."""
    if method["type"] != "travel_credit" or amount <= 0:
        return None
    if terms.credit_expired(method["expires"]):
        return f"travel credit {method['id']} expired on {method['expires']}"
    if method["balance"] < amount - 1e-9:
        return f"travel credit {method['id']} has {method['balance']}, less than the {amount} to pay"
    return None


def usable_method(user: Record, method_id: Any, amount: float) -> Record:
    """The user's method ``method_id``, checked to be able to pay ``amount``."""
    method = payment_method(user, method_id)
    problem = payment_problem(method, amount)
    if problem:
        raise ToolError(problem)
    return method


def active(components: Iterable[Record]) -> list[Record]:
    return [c for c in components if c["status"] == ACTIVE]


def component(trip: Record, kind: str, key: str, component_id: Any) -> Record:
    """The flight segment, stay or rental ``component_id`` of ``trip``."""
    for found in trip[kind]:
        if found[key] == component_id:
            return found  # type: ignore[no-any-return]
    raise ToolError(f"{component_id} is not part of trip {trip['trip_id']}")


def open_trip(view: StateView, trip_id: str) -> Record:
    """The trip, if it can still be changed (not cancelled, not completed)."""
    trip = get_trip(view, trip_id)
    if trip["status"] not in OPEN_STATUSES:
        raise ToolError(f"trip {trip_id} is {trip['status']} and cannot be changed")
    return trip


def net_cost(trip: Record) -> float:
    """What the trip costs so far: charges minus refunds."""
    sign = {"charge": 1, "refund": -1}
    return terms.money(sum(p["amount"] * sign[p["type"]] for p in trip["payments"]))


def trip_budget(user: Record) -> float | None:
    corporate = user.get("corporate")
    return None if not corporate else float(corporate["trip_budget"])


# --- flights ------------------------------------------------------------------------------------


def departure_at(view: StateView, flight: Record, day: str) -> datetime:
    offset = get_airport(view, flight["origin"])["utc_offset"]
    return terms.at_local(date.fromisoformat(day), flight["departure_time"], offset)


def arrival_at(view: StateView, flight: Record, day: str) -> datetime:
    offset = get_airport(view, flight["destination"])["utc_offset"]
    arrival_day = date.fromisoformat(day) + timedelta(days=flight["arrival_day_offset"])
    return terms.at_local(arrival_day, flight["arrival_time"], offset)


def flight_day(flight: Record, day: str) -> Record:
    found = flight["dates"].get(day)
    if found is None:
        raise ToolError(f"flight {flight['flight_number']} is not on sale for {day}")
    return found  # type: ignore[no-any-return]


def departed(view: StateView, segment: Record) -> bool:
    """Whether a trip's flight segment has left (or was due to leave) before now."""
    return departure_at(view, get_flight(view, segment["flight_number"]), segment["date"]) <= terms.NOW


def airline_cancelled(view: StateView, segment: Record) -> bool:
    day = get_flight(view, segment["flight_number"])["dates"].get(segment["date"])
    return day is not None and day["status"] == "cancelled"


def bookable_fare(view: StateView, flight: Record, day: str, cabin: str, seats: int) -> float:
    """The fare per traveller of ``flight`` on ``day`` in ``cabin``, if ``seats`` can be sold now."""
    terms.parse_day(day)
    record = flight_day(flight, day)
    number = flight["flight_number"]
    if record["status"] == "cancelled":
        raise ToolError(f"flight {number} on {day} was cancelled by the airline")
    if departure_at(view, flight, day) <= terms.NOW:
        raise ToolError(f"flight {number} on {day} has already departed")
    if record["seats"][cabin] < seats:
        raise ToolError(f"flight {number} on {day} has {record['seats'][cabin]} {cabin} seats left")
    return float(record["prices"][cabin])


@dataclass(frozen=True)
class Leg:
    """A flight on a date at a fare per traveller."""

    flight: Record
    day: str
    fare: float


def check_sequence(view: StateView, legs: Sequence[Leg]) -> None:
    """Each flight must leave after the one before it lands."""
    for earlier, later in zip(legs, legs[1:]):
        if departure_at(view, later.flight, later.day) <= arrival_at(view, earlier.flight, earlier.day):
            raise ToolError(
                f"flight {later.flight['flight_number']} on {later.day} leaves before "
                f"flight {earlier.flight['flight_number']} on {earlier.day} lands"
            )


def segment_leg(view: StateView, segment: Record) -> Leg:
    return Leg(get_flight(view, segment["flight_number"]), segment["date"], segment["fare"])


def trip_end(view: StateView, legs: Sequence[Leg]) -> date:
    """The day the last flight lands."""
    return max(arrival_at(view, leg.flight, leg.day).date() for leg in legs)


def international(view: StateView, legs: Sequence[Leg]) -> bool:
    countries = {get_airport(view, code)["country"] for leg in legs for code in _route(leg.flight)}
    return len(countries) > 1


def _route(flight: Record) -> list[str]:
    return [flight["origin"], *(flight.get("via") or []), flight["destination"]]


def passport_problem(person: Record, end: date) -> str | None:
    """Why ``person`` may not fly an international trip that ends on ``end``, else ``None``."""
    passport = person.get("passport")
    name = f"{person['first_name']} {person['last_name']}"
    if not passport:
        return f"{name} has no passport on file"
    deadline = terms.passport_deadline(end)
    if passport["expiry"] < deadline.isoformat():
        return f"the passport of {name} expires on {passport['expiry']}, before {deadline.isoformat()}"
    return None


@dataclass(frozen=True)
class BookingPlan:
    """A new trip: who flies, on which flights, in which cabin, and the price."""

    user: Record
    traveller_ids: list[str]
    legs: list[Leg]
    cabin: str
    insured: bool

    @property
    def fares(self) -> float:
        return terms.money(sum(leg.fare for leg in self.legs) * len(self.traveller_ids))

    @property
    def insurance(self) -> float:
        return terms.money(terms.INSURANCE_PER_TRAVELLER * len(self.traveller_ids) * self.insured)

    @property
    def total(self) -> float:
        return terms.money(self.fares + self.insurance)


def leg_requests(flights: Any) -> list[tuple[str, str]]:
    if not isinstance(flights, list) or not flights:
        raise ToolError("flights must be a non-empty list of {flight_number, date}")
    out = []
    for item in flights:
        if not isinstance(item, dict) or not {"flight_number", "date"} <= set(item):
            raise ToolError("each flight needs a flight_number and a date")
        out.append((str(item["flight_number"]).upper(), str(item["date"])))
    return out


def plan_booking(
    view: StateView, user_id: str, traveller_ids: Any, flights: Any, cabin: str, insurance: bool
) -> BookingPlan:
    user = get_user(view, user_id)
    if not isinstance(traveller_ids, list) or not traveller_ids:
        raise ToolError("at least one traveller is needed")
    if len(set(map(str, traveller_ids))) != len(traveller_ids) or len(traveller_ids) > terms.MAX_TRAVELLERS:
        raise ToolError(f"travellers must be distinct, at most {terms.MAX_TRAVELLERS}")
    for traveller_id in traveller_ids:
        traveller(user, traveller_id)
    if cabin not in terms.CABINS:
        raise ToolError(f"unknown cabin {cabin!r}")
    legs = []
    for number, day in leg_requests(flights):
        flight = get_flight(view, number)
        legs.append(Leg(flight, day, bookable_fare(view, flight, day, cabin, len(traveller_ids))))
    check_sequence(view, legs)
    return BookingPlan(user, list(traveller_ids), legs, cabin, bool(insurance))


@dataclass(frozen=True)
class ChangePlan:
    """Moving one flight segment to another flight on the same route."""

    trip: Record
    segment: Record
    leg: Leg
    fee_each: float
    travellers: int

    @property
    def difference(self) -> float:
        return terms.money((self.leg.fare - self.segment["fare"]) * self.travellers)

    @property
    def fee(self) -> float:
        return terms.money(self.fee_each * self.travellers)

    @property
    def net(self) -> float:
        """Positive: what the user pays; negative: what is refunded."""
        return terms.money(self.difference + self.fee)


def changeable_segment(view: StateView, trip: Record, segment_id: Any) -> Record:
    segment = component(trip, "flights", "segment_id", segment_id)
    if segment["status"] != ACTIVE:
        raise ToolError(f"flight segment {segment_id} is {segment['status']}")
    if departed(view, segment):
        raise ToolError(f"flight {segment['flight_number']} on {segment['date']} has already departed")
    return segment


def plan_flight_change(
    view: StateView, trip_id: str, segment_id: str, new_flight_number: str, new_date: str
) -> ChangePlan:
    trip = open_trip(view, trip_id)
    segment = changeable_segment(view, trip, segment_id)
    user = trip_owner(view, trip)
    fee = fare_fee_for(view, segment, user)
    if fee is None:
        raise ToolError("basic economy flights cannot be changed")
    flight = get_flight(view, new_flight_number)
    if (flight["origin"], flight["destination"]) != (segment["origin"], segment["destination"]):
        raise ToolError(
            f"flight {flight['flight_number']} flies {flight['origin']}-{flight['destination']}, "
            f"not {segment['origin']}-{segment['destination']}: the route of a flight cannot change"
        )
    if (flight["flight_number"], new_date) == (segment["flight_number"], segment["date"]):
        raise ToolError("the new flight is the current one")
    n = len(trip["travellers"])
    leg = Leg(flight, new_date, bookable_fare(view, flight, new_date, segment["cabin"], n))
    others = [segment_leg(view, s) if s is not segment else leg for s in active(trip["flights"])]
    check_sequence(view, sorted(others, key=lambda lg: departure_at(view, lg.flight, lg.day)))
    return ChangePlan(trip, segment, leg, fee, n)


def fare_fee_for(view: StateView, segment: Record, user: Record) -> float | None:
    """The change fee per traveller of a segment (none when the airline cancelled the flight)."""
    fee = terms.fare_fee(segment["cabin"], user["loyalty"]["tier"])
    return 0.0 if fee is not None and airline_cancelled(view, segment) else fee


@dataclass(frozen=True)
class CabinPlan:
    """Moving every remaining flight of a trip to another cabin."""

    trip: Record
    cabin: str
    new_fares: list[tuple[Record, float]]

    @property
    def net(self) -> float:
        n = len(self.trip["travellers"])
        return terms.money(sum(fare - segment["fare"] for segment, fare in self.new_fares) * n)


def plan_cabin_change(view: StateView, trip_id: str, cabin: str) -> CabinPlan:
    trip = open_trip(view, trip_id)
    segments = active(trip["flights"])
    if not segments:
        raise ToolError(f"trip {trip_id} has no booked flight")
    if any(departed(view, s) for s in segments):
        raise ToolError(f"a flight of trip {trip_id} has already departed: the cabin can no longer change")
    if cabin not in terms.CABINS:
        raise ToolError(f"unknown cabin {cabin!r}")
    if all(s["cabin"] == cabin for s in segments):
        raise ToolError(f"the flights of trip {trip_id} are already in {cabin}")
    n = len(trip["travellers"])
    fares = [
        (s, bookable_fare(view, get_flight(view, s["flight_number"]), s["date"], cabin, n)) for s in segments
    ]
    return CabinPlan(trip, cabin, fares)


def flight_refund(view: StateView, trip: Record, segment: Record) -> float:
    """The refund for cancelling ``segment`` now, for all travellers."""
    user = trip_owner(view, trip)
    full = (
        airline_cancelled(view, segment) or terms.within_grace(trip["created_at"]) or bool(trip["insurance"])
    )
    each = terms.flight_refund_each(segment["fare"], segment["cabin"], user["loyalty"]["tier"], full=full)
    return terms.money(each * len(trip["travellers"]))


# --- hotels and cars ----------------------------------------------------------------------------


def future_range(start: str, end: str, what: tuple[str, str]) -> tuple[date, date]:
    first, last = terms.parse_day(start, what[0]), terms.parse_day(end, what[1])
    if first <= terms.TODAY:
        raise ToolError(f"{what[0]} must be after today ({terms.TODAY.isoformat()})")
    if last <= first:
        raise ToolError(f"{what[1]} must be after {what[0]}")
    if (last - first).days > terms.MAX_NIGHTS:
        raise ToolError(f"at most {terms.MAX_NIGHTS} nights or days")
    return first, last


def free_cancellation_until(view: StateView, hotel: Record, room: Record, check_in: str) -> str | None:
    """Until when a stay can be cancelled for free (``None`` for non-refundable rates)."""
    if not room["refundable"]:
        return None
    offset = get_airport(view, hotel["airport"])["utc_offset"]
    start = terms.at_local(date.fromisoformat(check_in), hotel["check_in_time"], offset)
    return terms.instant_text(start - timedelta(hours=room["free_cancellation_hours"]))


@dataclass(frozen=True)
class StayPlan:
    trip: Record
    hotel: Record
    room_type: str
    nights: list[str]
    rooms: int

    @property
    def room(self) -> Record:
        return self.hotel["room_types"][self.room_type]  # type: ignore[no-any-return]

    @property
    def total(self) -> float:
        return terms.money(self.room["nightly_rate"] * len(self.nights) * self.rooms)


def plan_stay(
    view: StateView, trip_id: str, hotel_id: str, room_type: str, check_in: str, check_out: str, rooms: int
) -> StayPlan:
    trip = open_trip(view, trip_id)
    hotel = get_hotel(view, hotel_id)
    room = hotel["room_types"].get(room_type)
    if room is None:
        raise ToolError(f"hotel {hotel_id} has no room type {room_type!r}")
    first, last = future_range(check_in, check_out, ("check_in", "check_out"))
    if rooms < 1:
        raise ToolError("at least one room is needed")
    if rooms * room["max_guests"] < len(trip["travellers"]):
        raise ToolError(
            f"{rooms} {room_type} room(s) sleep {rooms * room['max_guests']}, "
            f"but the trip has {len(trip['travellers'])} travellers"
        )
    nights = terms.days_between(first, last)
    short = [n for n in nights if room["availability"].get(n, 0) < rooms]
    if short:
        raise ToolError(f"{hotel['name']} has not enough {room_type} rooms on {short[0]}")
    return StayPlan(trip, hotel, room_type, nights, rooms)


def stay_refund_now(stay: Record) -> float:
    """The refund for cancelling ``stay`` now."""
    until = stay["free_cancellation_until"]
    free = until is not None and terms.parse_instant(until) >= terms.NOW
    return terms.stay_refund(
        stay["total"], stay["nightly_rate"], stay["rooms"], refundable=stay["refundable"], free=free
    )


def started(day: str) -> bool:
    """Whether a stay checking in, or a rental picked up, on ``day`` has begun."""
    return date.fromisoformat(day) <= terms.TODAY


@dataclass(frozen=True)
class RentalPlan:
    trip: Record
    car: Record
    days: list[str]
    driver: Record

    @property
    def total(self) -> float:
        return terms.money(self.car["daily_rate"] * len(self.days))


def plan_rental(
    view: StateView, trip_id: str, car_id: str, pickup_date: str, dropoff_date: str, driver_id: str
) -> RentalPlan:
    trip = open_trip(view, trip_id)
    car = get_car(view, car_id)
    first, last = future_range(pickup_date, dropoff_date, ("pickup_date", "dropoff_date"))
    if driver_id not in trip["travellers"]:
        raise ToolError(f"the driver {driver_id} is not a traveller of trip {trip_id}")
    driver = traveller(trip_owner(view, trip), driver_id)
    days = terms.days_between(first, last)
    short = [d for d in days if car["availability"].get(d, 0) < 1]
    if short:
        raise ToolError(f"car offer {car_id} is not available on {short[0]}")
    return RentalPlan(trip, car, days, driver)


def driver_age(plan: RentalPlan) -> int:
    return terms.age_on(date.fromisoformat(plan.driver["birth_date"]), date.fromisoformat(plan.days[0]))


# --- ids and records ----------------------------------------------------------------------------


def _trip_number(key: str) -> int | None:
    return int(key[2:]) if key[2:].isdigit() else None


def _numbered(keys: Iterable[str]) -> tuple[int, str] | None:
    """The largest trip number among ``keys``, with its key (``None`` when none is numbered)."""
    return max(((n, key) for key in keys if (n := _trip_number(key)) is not None), default=None)


def _largest_base_trip(base: Database) -> tuple[int, str] | None:
    return _numbered(base.table("trips"))


def next_trip_id(view: StateView) -> str:
    """One more than the largest trip number in ``view`` (TR100001 for the first): O(trips changed)."""
    largest = view.base.memo(_largest_base_trip)
    if largest is not None and view.get("trips", largest[1]) is None:  # removed in this state: scan
        largest = _numbered(view.keys("trips"))
    numbers = [] if largest is None else [largest[0]]
    for key, record in view.changed("trips"):
        number = _trip_number(key)
        if record is not None and number is not None:
            numbers.append(number)
    return f"TR{max(numbers, default=100000) + 1}"


def next_id(prefix: str, existing: Iterable[str]) -> str:
    """``prefix`` followed by one more than the largest number already used with it."""
    numbers = [
        int(key[len(prefix) :]) for key in existing if key.startswith(prefix) and key[len(prefix) :].isdigit()
    ]
    return f"{prefix}{max(numbers, default=0) + 1}"


def payment(kind: str, amount: float, method_id: str, item: str) -> Record:
    return {"type": kind, "amount": terms.money(amount), "payment_method_id": method_id, "item": item}


def segment_record(segment_id: str, leg: Leg, cabin: str, method_id: str) -> Record:
    flight = leg.flight
    arrival = date.fromisoformat(leg.day) + timedelta(days=flight["arrival_day_offset"])
    return {
        "segment_id": segment_id,
        "flight_number": flight["flight_number"],
        "carrier": flight["carrier"],
        "date": leg.day,
        "origin": flight["origin"],
        "destination": flight["destination"],
        "departure_time": flight["departure_time"],
        "arrival_time": flight["arrival_time"],
        "arrival_date": arrival.isoformat(),
        "cabin": cabin,
        "fare": leg.fare,
        "status": ACTIVE,
        "payment_method_id": method_id,
    }


def stay_record(view: StateView, stay_id: str, plan: StayPlan, method_id: str) -> Record:
    room = plan.room
    return {
        "stay_id": stay_id,
        "hotel_id": plan.hotel["hotel_id"],
        "hotel_name": plan.hotel["name"],
        "city": plan.hotel["city"],
        "room_type": plan.room_type,
        "check_in": plan.nights[0],
        "check_out": (date.fromisoformat(plan.nights[-1]) + timedelta(days=1)).isoformat(),
        "nights": len(plan.nights),
        "rooms": plan.rooms,
        "nightly_rate": room["nightly_rate"],
        "total": plan.total,
        "refundable": room["refundable"],
        "free_cancellation_until": free_cancellation_until(view, plan.hotel, room, plan.nights[0]),
        "status": ACTIVE,
        "payment_method_id": method_id,
    }


def rental_record(rental_id: str, plan: RentalPlan, method_id: str) -> Record:
    car = plan.car
    return {
        "rental_id": rental_id,
        "car_id": car["car_id"],
        "company": car["company"],
        "car_class": car["car_class"],
        "city": car["city"],
        "pickup_date": plan.days[0],
        "dropoff_date": (date.fromisoformat(plan.days[-1]) + timedelta(days=1)).isoformat(),
        "days": len(plan.days),
        "daily_rate": car["daily_rate"],
        "total": plan.total,
        "driver_id": plan.driver["traveller_id"],
        "status": ACTIVE,
        "payment_method_id": method_id,
    }


def insurance_record(travellers: int, method_id: str, purchased_at: str = terms.NOW_TEXT) -> Record:
    return {
        "per_traveller": terms.INSURANCE_PER_TRAVELLER,
        "total": terms.money(terms.INSURANCE_PER_TRAVELLER * travellers),
        "payment_method_id": method_id,
        "purchased_at": purchased_at,
    }


def rooms_needed(travellers: int, max_guests: int) -> int:
    return math.ceil(travellers / max_guests)
