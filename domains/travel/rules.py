"""Executable travel policy rules: predicates over a trace of tool calls, and the dialogue when known.

Rules judge the attempt: a forbidden call is a violation even when the tool rejected it, so they
re-plan the call on ``step.before`` with the same functions the tools use (``booking``). Refund rules
check what a cancellation actually did, comparing ``step.after`` with the terms applied to
``step.before``. Arguments of any type are tolerated: a call that cannot be understood is left to the
tool, whose error is not a policy violation by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any, TypeVar

from apigen_gym.core.database import Record, StateView
from apigen_gym.core.policy import Finding, Rule, Step, Trace, rule
from apigen_gym.core.tools import ToolError, ToolKind
from apigen_gym.domains.travel import booking as bk
from apigen_gym.domains.travel import terms
from apigen_gym.domains.travel.tools import TOOLS, trip_started
from apigen_gym.kit.rules import (
    authentication_rule,
    confirmation_rule,
    one_tool_call_per_turn_rule,
    single_user_rule,
    transfer_rule,
)

IDENTIFY = ("find_user_id_by_email", "find_user_id_by_name_birth_date")
ANYONE_MAY_CALL = frozenset(
    {
        *IDENTIFY,
        "list_airports",
        "search_flights",
        "get_flight_details",
        "get_flight_status",
        "search_hotels",
        "get_hotel_details",
        "search_cars",
        "convert_currency",
        "calculate",
        "think",
        "transfer_to_human_agents",
    }
)
USER_SPECIFIC = tuple(name for name in TOOLS.names if name not in ANYONE_MAY_CALL)
WRITES = tuple(t.name for t in TOOLS.of_kind(ToolKind.WRITE))
PAID = (
    "book_trip",
    "add_hotel_stay",
    "add_car_rental",
    "add_trip_insurance",
    "change_flight",
    "change_cabin",
)
"""Writes that may charge a payment method of the user."""
TRIP_WRITES = tuple(n for n in WRITES if (n in PAID or n.startswith("cancel_")) and n != "book_trip")
"""Writes on an existing trip (every paid write but ``book_trip``, and the cancellations)."""
CENT = 0.005

_T = TypeVar("_T")
_MISUNDERSTOOD = (ToolError, KeyError, TypeError, ValueError, AttributeError, IndexError)


def _quietly(fn: Callable[..., _T], *args: Any) -> _T | None:
    """``fn(*args)``, or ``None`` when the call's arguments or records do not make sense."""
    try:
        return fn(*args)
    except _MISUNDERSTOOD:
        return None


# --- what a step is about -----------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _trip(step: Step, view: StateView | None = None) -> Record | None:
    """The trip the step acts on, in ``view`` (default: the state before the step)."""
    trip_id = _text(step.arg("trip_id"))
    found = (view or step.before).get("trips", trip_id) if trip_id else None
    return found if isinstance(found, dict) else None


def _owner(step: Step) -> str | None:
    """The user whose data the step reads or changes, when known."""
    if step.name not in USER_SPECIFIC:
        return None
    if step.arg("user_id") is not None:
        return _text(step.arg("user_id"))
    trip = _trip(step)
    return None if trip is None else _text(trip.get("user_id"))


def _user(step: Step) -> Record | None:
    """The user who pays for (or owns what) the step changes, as before the step."""
    user_id = _owner(step)
    found = step.before.get("users", user_id) if user_id else None
    return found if isinstance(found, dict) else None


def _planned_charge(step: Step) -> float | None:
    """What the step would charge (negative: refund), planned on the state before it."""
    view, arg = step.before, step.arg
    planners: dict[str, Callable[[], float]] = {
        "book_trip": lambda: (
            bk.plan_booking(
                view,
                arg("user_id"),
                arg("traveller_ids"),
                arg("flights"),
                arg("cabin"),
                arg("insurance", False),
            ).total
        ),
        "add_hotel_stay": lambda: (
            bk.plan_stay(
                view,
                arg("trip_id"),
                arg("hotel_id"),
                arg("room_type"),
                arg("check_in"),
                arg("check_out"),
                arg("rooms", 1),
            ).total
        ),
        "add_car_rental": lambda: (
            bk.plan_rental(
                view, arg("trip_id"), arg("car_id"), arg("pickup_date"), arg("dropoff_date"), arg("driver_id")
            ).total
        ),
        "change_flight": lambda: (
            bk.plan_flight_change(
                view, arg("trip_id"), arg("segment_id"), arg("new_flight_number"), arg("new_date")
            ).net
        ),
        "change_cabin": lambda: bk.plan_cabin_change(view, arg("trip_id"), arg("cabin")).net,
        "add_trip_insurance": lambda: (
            terms.INSURANCE_PER_TRAVELLER * len(bk.get_trip(view, arg("trip_id"))["travellers"])
        ),
    }
    planner = planners.get(step.name)
    return None if planner is None else _quietly(planner)


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _itinerary(step: Step) -> tuple[list[bk.Leg], list[str]] | None:
    """The flights and travellers a booking or a flight change would leave the trip with."""
    view = step.before
    if step.name == "book_trip":
        requests = _quietly(bk.leg_requests, step.arg("flights")) or []
        legs = [
            bk.Leg(bk.get_flight(view, number), day, 0.0)
            for number, day in requests
            if view.get("flights", number)
        ]
        return legs, _strings(step.arg("traveller_ids"))
    trip = _trip(step)
    if trip is None or step.arg("new_flight_number") is None:
        return None
    flight = view.get("flights", str(step.arg("new_flight_number")).upper())
    legs = []
    for segment in bk.active(trip["flights"]):
        if segment["segment_id"] == step.arg("segment_id") and flight is not None:
            legs.append(bk.Leg(flight, str(step.arg("new_date")), 0.0))
        else:
            legs.append(_quietly(bk.segment_leg, view, segment))
    return [leg for leg in legs if leg is not None], list(trip["travellers"])


def _refunds_added(step: Step) -> dict[str, float]:
    """Refunds the step added to its trip, summed by item (segment, stay, rental or 'insurance')."""
    before, after = _trip(step), _trip(step, step.after)
    if before is None or after is None or not step.ok:
        return {}
    added: dict[str, float] = {}
    for row in after["payments"][len(before["payments"]) :]:
        if row["type"] == "refund":
            added[row["item"]] = terms.money(added.get(row["item"], 0.0) + row["amount"])
    return added


def _cancelled(step: Step, kind: str, key: str) -> Iterator[Record]:
    """Components of ``kind`` that were booked before the step and are cancelled after it, as before."""
    before, after = _trip(step), _trip(step, step.after)
    if before is None or after is None or not step.ok:
        return
    now = {c[key]: c["status"] for c in after[kind]}
    for part in bk.active(before[kind]):
        if now.get(part[key]) == bk.CANCELLED:
            yield part


def _refund_findings(step: Step, expected: dict[str, float], what: str) -> Iterator[Finding]:
    added = _refunds_added(step)
    for item, amount in expected.items():
        if abs(added.get(item, 0.0) - amount) > CENT:
            yield step, f"{what} {item} was refunded {added.get(item, 0.0)}, but the terms give {amount}"


# --- rules --------------------------------------------------------------------------------------

authenticate_first = authentication_rule("travel.authenticate_first", IDENTIFY, USER_SPECIFIC)
single_user = single_user_rule("travel.single_user", IDENTIFY, _owner)
confirm_before_write = confirmation_rule("travel.confirm_before_write", WRITES)
one_tool_call_per_turn = one_tool_call_per_turn_rule("travel.one_tool_call_per_turn")
transfer_only_out_of_scope = transfer_rule("travel.transfer_only_out_of_scope")


@rule("travel.saved_travellers")
def saved_travellers(trace: Trace) -> Iterator[Finding]:
    """Book only travellers saved in the user's profile (save a new companion first), and let only
    one of them drive a rental car."""
    for step in trace.calls("book_trip", "add_car_rental"):
        user = _user(step)
        ids = (
            _strings(step.arg("traveller_ids"))
            if step.name == "book_trip"
            else _strings([step.arg("driver_id")])
        )
        saved = set() if user is None else set(user["travellers"])
        for traveller_id in ids if user is not None else []:
            if traveller_id not in saved:
                yield step, f"traveller {traveller_id} is not saved in the profile of {_owner(step)}"


@rule("travel.passport_validity")
def passport_validity(trace: Trace) -> Iterator[Finding]:
    """For an international trip, every traveller's passport must be valid for 6 months after the
    last flight lands."""
    for step in trace.calls("book_trip", "change_flight"):
        user, itinerary = _user(step), _itinerary(step)
        if user is None or itinerary is None or not itinerary[0]:
            continue
        legs, traveller_ids = itinerary
        if not _quietly(bk.international, step.before, legs):
            continue
        end = _quietly(bk.trip_end, step.before, legs)
        for traveller_id in traveller_ids:
            person = user["travellers"].get(traveller_id)
            problem = None if person is None or end is None else bk.passport_problem(person, end)
            if problem:
                yield step, f"international trip ending {end}: {problem}"


@rule("travel.within_budget")
def within_budget(trace: Trace) -> Iterator[Finding]:
    """Never let a trip of a corporate traveller cost more than the company's per-trip budget."""
    for step in trace.calls(*PAID):
        user, charge = _user(step), _planned_charge(step)
        budget = None if user is None else bk.trip_budget(user)
        if budget is None or charge is None:
            continue
        trip = _trip(step) if step.name != "book_trip" else None
        cost = terms.money((bk.net_cost(trip) if trip else 0.0) + charge)
        if cost > budget + CENT:
            yield step, f"the trip would cost {cost}, above the per-trip budget of {budget}"


@rule("travel.fare_rules")
def fare_rules(trace: Trace) -> Iterator[Finding]:
    """Basic economy flights cannot be changed; a changed flight keeps its origin and destination."""
    for step in trace.calls("change_flight"):
        trip = _trip(step)
        segment = (
            None
            if trip is None
            else _quietly(bk.component, trip, "flights", "segment_id", step.arg("segment_id"))
        )
        if segment is None:
            continue
        if segment["cabin"] == "basic_economy":
            yield step, f"segment {segment['segment_id']} is basic economy, which cannot be changed"
        flight = step.before.get("flights", str(step.arg("new_flight_number")).upper())
        route = (segment["origin"], segment["destination"])
        if flight is not None and (flight["origin"], flight["destination"]) != route:
            yield step, f"flight {flight['flight_number']} does not fly {route[0]}-{route[1]}"


def _started_part(step: Step, trip: Record) -> str | None:
    """What of ``trip`` has already begun, for the component the step touches."""
    view = step.before
    if step.name in ("change_flight", "cancel_flight"):
        segment = _quietly(bk.component, trip, "flights", "segment_id", step.arg("segment_id"))
        return f"flight {segment['segment_id']}" if segment and bk.departed(view, segment) else None
    if step.name == "cancel_hotel_stay":
        stay = _quietly(bk.component, trip, "hotels", "stay_id", step.arg("stay_id"))
        return f"stay {stay['stay_id']}" if stay and bk.started(stay["check_in"]) else None
    if step.name == "cancel_car_rental":
        rental = _quietly(bk.component, trip, "cars", "rental_id", step.arg("rental_id"))
        return f"rental {rental['rental_id']}" if rental and bk.started(rental["pickup_date"]) else None
    if step.name in ("cancel_trip", "change_cabin", "add_trip_insurance"):
        return "the trip" if _quietly(trip_started, view, trip) else None
    return None


@rule("travel.no_changes_after_start")
def no_changes_after_start(trace: Trace) -> Iterator[Finding]:
    """Change nothing on a completed or cancelled trip, and never change or cancel a flight that has
    departed, a stay or rental that has begun, or a whole trip that has started."""
    for step in trace.calls(*TRIP_WRITES):
        trip = _trip(step)
        if trip is None:
            continue
        if trip["status"] not in bk.OPEN_STATUSES:
            yield step, f"trip {trip['trip_id']} is {trip['status']}"
            continue
        part = _started_part(step, trip)
        if part:
            yield step, f"{part} of trip {trip['trip_id']} has already begun"


@rule("travel.flight_refund")
def flight_refund(trace: Trace) -> Iterator[Finding]:
    """A cancelled flight is refunded by the fare rules: in full if the airline cancelled it, within
    24 hours of booking, if insured or in business; economy minus the fee; basic economy nothing."""
    for step in trace.calls("cancel_flight", "cancel_trip"):
        trip = _trip(step)
        if trip is None:
            continue
        parts = _cancelled(step, "flights", "segment_id")
        expected = {s["segment_id"]: bk.flight_refund(step.before, trip, s) for s in parts}
        yield from _refund_findings(step, expected, "flight")


@rule("travel.hotel_refund")
def hotel_refund(trace: Trace) -> Iterator[Finding]:
    """A cancelled hotel stay is refunded in full until its free-cancellation time, then all but one
    night per room; a non-refundable rate is not refunded."""
    for step in trace.calls("cancel_hotel_stay", "cancel_trip"):
        expected = {s["stay_id"]: bk.stay_refund_now(s) for s in _cancelled(step, "hotels", "stay_id")}
        yield from _refund_findings(step, expected, "stay")


@rule("travel.points_redemption")
def points_redemption(trace: Trace) -> Iterator[Finding]:
    """Redeem a positive multiple of 100 points, no more than the balance, at USD 0.01 per point."""
    for step in trace.calls("redeem_points"):
        user, points = _user(step), step.arg("points")
        if user is None or not isinstance(points, int):
            continue
        balance = user["loyalty"]["points"]
        if points <= 0 or points % terms.POINTS_STEP or points > balance:
            yield (
                step,
                f"{points} points asked, with a balance of {balance} (multiples of {terms.POINTS_STEP})",
            )
            continue
        after = step.after.get("users", user["user_id"])
        added = [m for k, m in after["payment_methods"].items() if k not in user["payment_methods"]]
        value = sum(m["balance"] for m in added)
        if step.ok and (
            after["loyalty"]["points"] != balance - points or abs(value - terms.points_value(points)) > CENT
        ):
            yield step, f"{points} points must become {terms.points_value(points)} of credit, not {value}"


@rule("travel.driver_age")
def driver_age(trace: Trace) -> Iterator[Finding]:
    """The driver of a rental car must be at least the car's minimum driver age on the pickup date."""
    for step in trace.calls("add_car_rental"):
        user = _user(step)
        car = step.before.get("cars", _text(step.arg("car_id")) or "")
        driver = None if user is None else user["travellers"].get(_text(step.arg("driver_id")) or "")
        pickup = _quietly(date.fromisoformat, step.arg("pickup_date"))
        if car is None or driver is None or pickup is None:
            continue
        age = terms.age_on(date.fromisoformat(driver["birth_date"]), pickup)
        if age < car["min_driver_age"]:
            yield step, f"the driver is {age} on {pickup}, under the minimum age of {car['min_driver_age']}"


@rule("travel.valid_payment")
def valid_payment(trace: Trace) -> Iterator[Finding]:
    """Pay only with a method saved in the user's profile; a travel credit must not have expired and
    must cover the whole amount."""
    for step in trace.calls(*PAID):
        user, method_id = _user(step), step.arg("payment_method_id")
        if user is None or method_id is None:
            continue
        method = user["payment_methods"].get(method_id) if isinstance(method_id, str) else None
        if method is None:
            yield step, f"payment method {method_id} is not in the profile of {user['user_id']}"
            continue
        charge = _planned_charge(step)
        problem = _quietly(bk.payment_problem, method, charge if charge is not None else 0.01)
        if problem:
            yield step, problem


@rule("travel.insurance_window")
def insurance_window(trace: Trace) -> Iterator[Finding]:
    """Insurance is sold only with the booking or within 24 hours of it, before the trip starts."""
    for step in trace.calls("add_trip_insurance"):
        trip = _trip(step)
        if trip is not None and not _quietly(terms.within_grace, trip["created_at"]):
            yield step, f"trip {trip['trip_id']} was booked at {trip['created_at']}, more than 24 hours ago"


RULES: list[Rule] = [
    authenticate_first,
    single_user,
    confirm_before_write,
    one_tool_call_per_turn,
    transfer_only_out_of_scope,
    saved_travellers,
    passport_validity,
    within_budget,
    fare_rules,
    no_changes_after_start,
    flight_refund,
    hotel_refund,
    points_redemption,
    driver_age,
    valid_payment,
    insurance_window,
]
