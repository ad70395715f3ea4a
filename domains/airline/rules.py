"""Executable airline policy rules: predicates over a trace of tool calls, and the dialogue when known.

Every rule judges the attempt: a forbidden call is a violation even when the tool rejected it. States
are read only through ``step.before`` / ``step.after``; arguments of any type and records that do not
exist are tolerated (the tool reports those as errors, which are not policy violations by themselves).
The clock is fixed at :data:`~apigen_gym.domains.airline.terms.NOW`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from apigen_gym.core.database import StateView
from apigen_gym.core.policy import Finding, Rule, Step, Trace, rule
from apigen_gym.core.tools import ToolKind
from apigen_gym.domains.airline.terms import (
    BAG_FEE,
    CANCELLED_FLIGHT_CREDIT,
    CHANGE_PAYMENT_SOURCES,
    DELAYED_FLIGHT_CREDIT,
    FLOWN_STATUSES,
    MAX_PASSENGERS,
    PAYMENT_LIMITS,
    booked_within_window,
    free_bags,
    nonfree_bags,
    segment_status,
)
from apigen_gym.domains.airline.tools import TOOLS
from apigen_gym.kit.rules import confirmation_rule, one_tool_call_per_turn_rule, transfer_rule

BOOK = "book_reservation"
CANCEL = "cancel_reservation"
CHANGE_FLIGHTS = "update_reservation_flights"
CHANGE_BAGS = "update_reservation_baggages"
CHANGE_PASSENGERS = "update_reservation_passengers"
SEND_CERTIFICATE = "send_certificate"
WRITES = tuple(t.name for t in TOOLS.of_kind(ToolKind.WRITE))
RESERVATION_WRITES = (CANCEL, CHANGE_FLIGHTS, CHANGE_BAGS, CHANGE_PASSENGERS)
PAID_CHANGES = (CHANGE_FLIGHTS, CHANGE_BAGS)
ELITE = ("silver", "gold")

COVERED_REASON = re.compile(
    r"\b(sick|ill|illness|unwell|flu|health|medical|hospital\w*|doctor|injur\w*|surgery|fever|covid"
    r"|weather|storm\w*|hurricane|snow\w*|blizzard|flood\w*|tornado|typhoon)\b",
    re.IGNORECASE,
)
ASKS_COMPENSATION = re.compile(
    r"\b(compensat\w*|certificate|voucher|gesture|credit|reimburs\w*|make (it|this|that) up)\b",
    re.IGNORECASE,
)

# --- reading the state ---------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """``value`` if it is a string (arguments of rejected calls may have any type)."""
    return value if isinstance(value, str) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list argument (empty if it is not a list)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _record(view: StateView, table: str, key: Any) -> dict[str, Any] | None:
    found = view.get(table, key) if isinstance(key, str) else None
    return found if isinstance(found, dict) else None


def _reservation(step: Step) -> dict[str, Any] | None:
    """The reservation the step acts on, as it was before the step."""
    return _record(step.before, "reservations", step.arg("reservation_id"))


def _user(step: Step) -> dict[str, Any] | None:
    """The user the step concerns (the booker, the reservation's owner, the certificate's receiver)."""
    if step.name in (BOOK, SEND_CERTIFICATE):
        return _record(step.before, "users", step.arg("user_id"))
    return _record(step.before, "users", (_reservation(step) or {}).get("user_id"))


def _methods(user: dict[str, Any] | None) -> dict[str, Any]:
    methods = (user or {}).get("payment_methods")
    return methods if isinstance(methods, dict) else {}


def _source(user: dict[str, Any] | None, payment_id: str) -> str:
    """A payment method's kind: from the profile, else from its id ('gift_card_123' → 'gift_card')."""
    method = _methods(user).get(payment_id)
    if isinstance(method, dict) and isinstance(method.get("source"), str):
        return str(method["source"])
    return payment_id.rsplit("_", 1)[0]


def segment_statuses(view: StateView, reservation: dict[str, Any]) -> list[str | None]:
    """The status of each segment's flight on its date."""
    return [segment_status(view, s) for s in _dicts(reservation.get("flights"))]


def flown(view: StateView, reservation: dict[str, Any]) -> bool:
    return any(status in FLOWN_STATUSES for status in segment_statuses(view, reservation))


def _legs(step: Step) -> list[tuple[Any, Any]]:
    """``(flight_number, date)`` of each flight of the step's ``flights`` argument."""
    return [(f.get("flight_number"), f.get("date")) for f in _dicts(step.arg("flights"))]


def _booked_legs(reservation: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [(f.get("flight_number"), f.get("date")) for f in _dicts(reservation.get("flights"))]


def _passenger_count(reservation: dict[str, Any]) -> int:
    passengers = reservation.get("passengers")
    return len(passengers) if isinstance(passengers, list) else 0


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fare_difference(step: Step) -> float | None:
    """What a flight change costs (negative: refund), priced as the tool prices it; None if unknown."""
    reservation, cabin = _reservation(step), _text(step.arg("cabin"))
    if reservation is None or cabin is None or not _dicts(step.arg("flights")):
        return None
    booked = _dicts(reservation.get("flights"))
    old_prices = [_number(f.get("price")) for f in booked]
    if None in old_prices:
        return None
    kept = dict(zip(reversed(_booked_legs(reservation)), reversed(old_prices)))  # first match wins
    count, total = _passenger_count(reservation), 0.0
    for leg in _legs(step):
        price = kept.get(leg) if cabin == reservation.get("cabin") else None
        if price is None:
            price = _current_price(step.before, leg, cabin)
        if price is None:
            return None
        total += price * count
    return total - sum(p or 0 for p in old_prices) * count


def _current_price(view: StateView, leg: tuple[Any, Any], cabin: str) -> float | None:
    """Today's price of a flight on a date in a cabin (None if it cannot be booked)."""
    flight = _record(view, "flights", leg[0]) or {}
    day = flight.get("dates", {}).get(leg[1]) if isinstance(leg[1], str) else None
    return _number((day or {}).get("prices", {}).get(cabin))


def _amount_due(step: Step) -> float | None:
    """What a paid change charges the payment method: the fare difference or the added paid bags."""
    if step.name == CHANGE_FLIGHTS:
        return _fare_difference(step)
    reservation, nonfree = _reservation(step), _number(step.arg("nonfree_baggages"))
    if reservation is None or nonfree is None:
        return None
    return BAG_FEE * max(0, nonfree - (reservation.get("nonfree_baggages") or 0))


def _reservation_findings(trace: Trace, names: tuple[str, ...]) -> Iterator[tuple[Step, dict[str, Any]]]:
    """Steps calling ``names`` on a reservation that existed before the step, with that reservation."""
    for step in trace.calls(*names):
        reservation = _reservation(step)
        if reservation is not None:
            yield step, reservation


# --- the dialogue and the shared rules -----------------------------------------------------------

confirm_before_write = confirmation_rule("airline.confirm_before_write", WRITES)
one_tool_call_per_turn = one_tool_call_per_turn_rule("airline.one_tool_call_per_turn")
transfer_only_out_of_scope = transfer_rule("airline.transfer_only_out_of_scope")


# --- booking -------------------------------------------------------------------------------------


@rule("airline.max_passengers")
def max_passengers(trace: Trace) -> Iterator[Finding]:
    """Book at most five passengers per reservation."""
    for step in trace.calls(BOOK):
        count = len(step.arg("passengers")) if isinstance(step.arg("passengers"), list) else 0
        if count > MAX_PASSENGERS:
            yield step, f"{count} passengers in one reservation; at most {MAX_PASSENGERS} are allowed"


@rule("airline.payment_method_limits")
def payment_method_limits(trace: Trace) -> Iterator[Finding]:
    """Pay a booking with at most one certificate, one credit card and three gift cards."""
    for step in trace.calls(BOOK):
        user = _user(step)
        kinds = [
            _source(user, p["payment_id"])
            for p in _dicts(step.arg("payment_methods"))
            if isinstance(p.get("payment_id"), str)
        ]
        for kind, limit in PAYMENT_LIMITS.items():
            if kinds.count(kind) > limit:
                yield (
                    step,
                    f"{kinds.count(kind)} payments by {kind.replace('_', ' ')}; at most {limit} allowed",
                )


@rule("airline.payment_in_profile")
def payment_in_profile(trace: Trace) -> Iterator[Finding]:
    """Pay only with payment methods saved in the user's profile."""
    for step in trace.calls(BOOK, *PAID_CHANGES):
        user = _user(step)
        if user is None:
            continue
        if step.name == BOOK:
            wanted = [_text(p.get("payment_id")) for p in _dicts(step.arg("payment_methods"))]
        else:
            wanted = [_text(step.arg("payment_id"))]
        for payment_id in wanted:
            if payment_id is not None and payment_id not in _methods(user):
                yield step, f"payment method {payment_id} is not in the profile of the user"


@rule("airline.baggage_allowance")
def baggage_allowance(trace: Trace) -> Iterator[Finding]:
    """Count as paid exactly the bags beyond the free allowance (membership × cabin, per passenger)."""
    for step in trace.calls(BOOK, CHANGE_BAGS):
        user, reservation = _user(step), _reservation(step)
        total, nonfree = _number(step.arg("total_baggages")), _number(step.arg("nonfree_baggages"))
        if step.name == BOOK:
            cabin = _text(step.arg("cabin"))
            count = len(step.arg("passengers")) if isinstance(step.arg("passengers"), list) else 0
        else:
            cabin = _text((reservation or {}).get("cabin"))
            count = _passenger_count(reservation or {})
        membership = _text((user or {}).get("membership"))
        if None in (user, cabin, membership, total, nonfree) or (step.name != BOOK and reservation is None):
            continue
        due = nonfree_bags(int(total or 0), count, str(membership), str(cabin))
        if nonfree != due:
            free = count * free_bags(str(membership), str(cabin))
            yield step, f"{nonfree} paid bags out of {total}, but {free} are free here, so {due} must be paid"


@rule("airline.insurance_only_at_booking")
def insurance_only_at_booking(trace: Trace) -> Iterator[Finding]:
    """Sell travel insurance only with a new booking: never add it to a trip the user already booked."""
    cancelled_here: list[dict[str, Any]] = []
    for step in trace.steps:
        if step.name == CANCEL and step.ok and _reservation(step) is not None:
            cancelled_here.append(_reservation(step) or {})
        for key, before, after in _changed_reservations(step):
            if step.name != BOOK and before.get("insurance") != after.get("insurance"):
                yield step, f"{step.name} changed the insurance of reservation {key}"
        if step.name == BOOK and step.arg("insurance") == "yes":
            held = _held_reservations(step) + cancelled_here
            same = [r for r in held if r.get("insurance") != "yes" and _same_trip(step, r)]
            if same:
                yield step, f"rebooks reservation {same[0].get('reservation_id')} only to add insurance"


def _changed_reservations(step: Step) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(id, before, after)`` of the reservation a write changed (the one named by its argument)."""
    key = _text(step.arg("reservation_id"))
    before = _record(step.before, "reservations", key)
    after = _record(step.after, "reservations", key)
    if key is not None and before is not None and after is not None:
        yield key, before, after


def _held_reservations(step: Step) -> list[dict[str, Any]]:
    """The booker's reservations that are not cancelled, before the step."""
    ids = (_user(step) or {}).get("reservations") or []
    found = [_record(step.before, "reservations", key) for key in ids]
    return [r for r in found if r is not None and r.get("status") != "cancelled"]


def _same_trip(step: Step, reservation: dict[str, Any]) -> bool:
    """Whether a booking repeats a reservation's flights for the same travellers."""
    names = [(p.get("first_name"), p.get("last_name")) for p in _dicts(step.arg("passengers"))]
    held = [(p.get("first_name"), p.get("last_name")) for p in _dicts(reservation.get("passengers"))]
    return _legs(step) == _booked_legs(reservation) and sorted(map(str, names)) == sorted(map(str, held))


# --- changing a reservation ----------------------------------------------------------------------


@rule("airline.basic_economy_no_flight_change")
def basic_economy_no_flight_change(trace: Trace) -> Iterator[Finding]:
    """Never change the flights of a basic economy reservation (its cabin may change)."""
    for step, reservation in _reservation_findings(trace, (CHANGE_FLIGHTS,)):
        if reservation.get("cabin") == "basic_economy" and _legs(step) != _booked_legs(reservation):
            yield (
                step,
                f"changes the flights of basic economy reservation {reservation.get('reservation_id')}",
            )


def _itinerary_problem(step: Step, reservation: dict[str, Any]) -> str | None:
    """Why the new flights do not keep the reservation's origin, destination and trip type."""
    flights = [_record(step.before, "flights", number) for number, _ in _legs(step)]
    if not flights or any(f is None for f in flights):
        return None  # unknown flights: the tool rejects the call
    path = [(f["origin"], f["destination"]) for f in flights if f is not None]
    origin, destination = reservation.get("origin"), reservation.get("destination")
    if any(a[1] != b[0] for a, b in zip(path, path[1:])):
        return "the new flights do not connect"
    if path[0][0] != origin:
        return f"the new itinerary starts at {path[0][0]}, not at the origin {origin}"
    if reservation.get("flight_type") == "round_trip":
        if path[-1][1] != origin or all(leg[1] != destination for leg in path):
            return f"the new itinerary is not a round trip {origin}–{destination}–{origin}"
    elif path[-1][1] != destination:
        return f"the new itinerary ends at {path[-1][1]}, not at the destination {destination}"
    return None


@rule("airline.same_origin_destination_trip_type")
def same_origin_destination_trip_type(trace: Trace) -> Iterator[Finding]:
    """Keep the reservation's origin, destination and trip type when changing its flights."""
    for step, reservation in _reservation_findings(trace, (CHANGE_FLIGHTS,)):
        problem = _itinerary_problem(step, reservation)
        if problem is not None:
            yield step, f"reservation {reservation.get('reservation_id')}: {problem}"


@rule("airline.cabin_change_all_segments")
def cabin_change_all_segments(trace: Trace) -> Iterator[Finding]:
    """Change the cabin of every segment at once: a cabin change must keep or replace every flight."""
    for step, reservation in _reservation_findings(trace, (CHANGE_FLIGHTS,)):
        legs, booked = _legs(step), _booked_legs(reservation)
        if step.arg("cabin") == reservation.get("cabin") or not legs:
            continue
        if len(legs) < len(booked) and all(leg in booked for leg in legs):
            yield (
                step,
                f"changes the cabin of only {len(legs)} of the {len(booked)} flights of the reservation",
            )


@rule("airline.no_change_after_flown")
def no_change_after_flown(trace: Trace) -> Iterator[Finding]:
    """Never change the flights or cabin of a reservation once one of its flights has been flown."""
    for step, reservation in _reservation_findings(trace, (CHANGE_FLIGHTS,)):
        if flown(step.before, reservation):
            yield step, f"reservation {reservation.get('reservation_id')} has a flight already flown"


@rule("airline.no_baggage_removal")
def no_baggage_removal(trace: Trace) -> Iterator[Finding]:
    """Add checked bags, never remove them (neither the total nor the paid ones)."""
    for step, reservation in _reservation_findings(trace, (CHANGE_BAGS,)):
        for field in ("total_baggages", "nonfree_baggages"):
            new, old = _number(step.arg(field)), _number(reservation.get(field))
            if new is not None and old is not None and new < old:
                yield step, f"{field} goes down from {old} to {new}: bags cannot be removed"


@rule("airline.passenger_count_fixed")
def passenger_count_fixed(trace: Trace) -> Iterator[Finding]:
    """Never change the number of passengers of a reservation (details may be corrected)."""
    for step, reservation in _reservation_findings(trace, (CHANGE_PASSENGERS,)):
        new = step.arg("passengers")
        if isinstance(new, list) and len(new) != _passenger_count(reservation):
            yield step, f"{len(new)} passengers instead of the reservation's {_passenger_count(reservation)}"


@rule("airline.flight_change_payment")
def flight_change_payment(trace: Trace) -> Iterator[Finding]:
    """Pay a change with one credit card or gift card of the profile; a gift card must cover it."""
    for step, _ in _reservation_findings(trace, PAID_CHANGES):
        payment_id, user = _text(step.arg("payment_id")), _user(step)
        if payment_id is None or payment_id not in _methods(user):
            continue  # see airline.payment_in_profile
        source, due = _source(user, payment_id), _amount_due(step)
        balance = _number(_methods(user)[payment_id].get("amount"))
        if source not in CHANGE_PAYMENT_SOURCES:
            yield step, f"{payment_id} is a {source.replace('_', ' ')}: changes are paid by card or gift card"
        elif source == "gift_card" and due is not None and balance is not None and balance < due:
            yield step, f"gift card {payment_id} has {balance}, less than the {due} to pay"


@rule("airline.cancelled_is_final")
def cancelled_is_final(trace: Trace) -> Iterator[Finding]:
    """Never cancel or change a reservation that is already cancelled."""
    for step, reservation in _reservation_findings(trace, RESERVATION_WRITES):
        if reservation.get("status") == "cancelled":
            yield step, f"reservation {reservation.get('reservation_id')} is already cancelled"


# --- cancelling ----------------------------------------------------------------------------------


def airline_cancelled(view: StateView, reservation: dict[str, Any]) -> bool:
    return "cancelled" in segment_statuses(view, reservation)


def eligible_without_insurance(view: StateView, reservation: dict[str, Any]) -> bool:
    """Booked in the last 24 hours, a flight cancelled by the airline, or business class."""
    return (
        booked_within_window(reservation.get("created_at"))
        or airline_cancelled(view, reservation)
        or reservation.get("cabin") == "business"
    )


@rule("airline.cancellation_eligibility")
def cancellation_eligibility(trace: Trace) -> Iterator[Finding]:
    """Cancel only a reservation booked in the last 24 hours, hit by an airline cancellation, in
    business class, or insured (the insured reason must then be covered: see the next rule)."""
    for step, reservation in _reservation_findings(trace, (CANCEL,)):
        insured = reservation.get("insurance") == "yes"
        if not insured and not eligible_without_insurance(step.before, reservation):
            yield (
                step,
                f"reservation {reservation.get('reservation_id')} was booked more than 24 hours ago, "
                "no flight of it was cancelled, it is not business class and it has no insurance",
            )


@rule("airline.insurance_reason_covered", needs_dialogue=True)
def insurance_reason_covered(trace: Trace) -> Iterator[Finding]:
    """When only the insurance makes a cancellation possible, the user's reason is health or weather."""
    for step, reservation in _reservation_findings(trace, (CANCEL,)):
        if reservation.get("insurance") != "yes" or eligible_without_insurance(step.before, reservation):
            continue
        if not any(COVERED_REASON.search(m) for m in trace.messages_before(step, "user")):
            yield step, "cancelled on the insurance, but the user gave no health or weather reason"


@rule("airline.no_cancel_after_flown")
def no_cancel_after_flown(trace: Trace) -> Iterator[Finding]:
    """Never cancel a reservation once one of its flights has been flown (landed or flying)."""
    for step, reservation in _reservation_findings(trace, (CANCEL,)):
        if flown(step.before, reservation):
            yield step, f"reservation {reservation.get('reservation_id')} has a flight already flown"


# --- compensation --------------------------------------------------------------------------------


def disruption_credits(view: StateView, reservation: dict[str, Any]) -> dict[str, int]:
    """The certificate a disrupted reservation may earn: ``{"cancelled" | "delayed": amount}``."""
    statuses, count = segment_statuses(view, reservation), _passenger_count(reservation)
    found = {}
    if "cancelled" in statuses:
        found["cancelled"] = CANCELLED_FLIGHT_CREDIT * count
    if "delayed" in statuses:
        found["delayed"] = DELAYED_FLIGHT_CREDIT * count
    return found


def _settled_before(trace: Trace, step: Step, reservation_id: Any) -> bool:
    """Whether the reservation was changed or cancelled successfully earlier in the trace."""
    return any(
        s.ok and s.name in (CANCEL, CHANGE_FLIGHTS) and s.arg("reservation_id") == reservation_id
        for s in trace.steps[: step.index]
    )


def _compensation_problem(trace: Trace, step: Step, used: set[str]) -> tuple[str | None, str | None]:
    """``(problem, reservation id matched)`` for one certificate."""
    user, amount = _user(step), _number(step.arg("amount"))
    if user is None or amount is None:
        return None, None
    elite = user.get("membership") in ELITE
    views = (trace.steps[0].before, step.before)
    problems: list[str] = []
    for key in user.get("reservations") or []:
        for view in views:
            reservation = _record(view, "reservations", key)
            credits = (
                disruption_credits(view, reservation) if reservation is not None and key not in used else {}
            )
            if reservation is None or not credits:
                continue
            if not (elite or reservation.get("insurance") == "yes" or reservation.get("cabin") == "business"):
                problems.append(f"{key}: a regular member, no insurance, not business class")
            elif credits.get("cancelled") == amount or (
                credits.get("delayed") == amount and _settled_before(trace, step, key)
            ):
                return None, key
            elif credits.get("delayed") == amount:
                problems.append(f"{key}: a delay is compensated only after changing or cancelling")
            else:
                problems.append(f"{key}: the amount for it is {' or '.join(map(str, credits.values()))}")
    if not problems:
        return "the user has no reservation with a cancelled or delayed flight to compensate", None
    return f"certificate of {amount} not allowed ({'; '.join(dict.fromkeys(problems))})", None


@rule("airline.compensation_eligibility_and_amount")
def compensation_eligibility_and_amount(trace: Trace) -> Iterator[Finding]:
    """Send a certificate only for a disrupted reservation of a silver/gold member, an insured or a
    business one: $100 × passengers for a cancelled flight, $50 × passengers for a delayed flight
    once the reservation has been changed or cancelled; one certificate per reservation."""
    used: set[str] = set()
    for step in trace.calls(SEND_CERTIFICATE):
        problem, matched = _compensation_problem(trace, step, used)
        if problem is not None:
            yield step, problem
        if matched is not None and step.ok:
            used.add(matched)


@rule("airline.compensation_only_when_asked", needs_dialogue=True)
def compensation_only_when_asked(trace: Trace) -> Iterator[Finding]:
    """Offer no compensation unprompted: send a certificate only after the user asked for one."""
    for step in trace.calls(SEND_CERTIFICATE):
        if not any(ASKS_COMPENSATION.search(m) for m in trace.messages_before(step, "user")):
            yield step, "sent a certificate although the user never asked for compensation"


RULES: list[Rule] = [
    confirm_before_write,
    one_tool_call_per_turn,
    transfer_only_out_of_scope,
    max_passengers,
    payment_method_limits,
    payment_in_profile,
    baggage_allowance,
    insurance_only_at_booking,
    basic_economy_no_flight_change,
    same_origin_destination_trip_type,
    cabin_change_all_segments,
    no_change_after_flown,
    no_baggage_removal,
    passenger_count_fixed,
    flight_change_payment,
    cancelled_is_final,
    cancellation_eligibility,
    insurance_reason_covered,
    no_cancel_after_flown,
    compensation_eligibility_and_amount,
    compensation_only_when_asked,
]
