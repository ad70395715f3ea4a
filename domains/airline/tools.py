"""The 14 airline tools, behaving exactly like τ-bench's (names, arguments, outputs, errors, changes).

With the three deliberate fixes of the conformance data: changing flights also sets the reservation's
cabin; the one-stop search finds the next day by real date arithmetic and reports the second leg on
its own date; an unknown reservation id is ``Error: reservation not found``.

Nested objects (flights, passengers, payments) are taken as τ-bench takes them: their declared keys
are checked, other keys are kept, and what is stored keeps the agent's key order.

Tools never write the flights table (seat counts are not updated, as in τ-bench), so flight look-ups
use the base database's indexes: a search costs O(matching flights), not O(table).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict

from apigen_gym.core.database import Fork, Record
from apigen_gym.core.tools import AsSent, Number, ToolError, ToolKind, ToolSet, dumps, tool
from apigen_gym.domains.airline.terms import AIRPORT_CITIES, BAG_FEE, INSURANCE_FEE, NOW_TEXT, next_day
from apigen_gym.kit.common_tools import calculate, think, transfer_to_human_agents

RESERVATION_IDS = tuple(f"HATHA{letter}" for letter in "TUVWXYZ")
"""Ids of new reservations, first free one first (τ-bench uses the first three)."""
CERTIFICATE_IDS = ("certificate_3221322", "certificate_3221323", "certificate_3221324")
"""Ids of sent certificates, first free one first."""
CHANGE_FORBIDDEN_SOURCE = "certificate"


class FlightRef(TypedDict):
    """One flight of an itinerary."""

    flight_number: Annotated[str, Field(description="the flight number, e.g. 'HAT001'")]
    date: Annotated[str, Field(description="the date of that flight, 'YYYY-MM-DD'")]


class Passenger(TypedDict):
    """One traveller."""

    first_name: Annotated[str, Field(description="the passenger's first name")]
    last_name: Annotated[str, Field(description="the passenger's last name")]
    dob: Annotated[str, Field(description="the passenger's date of birth, 'YYYY-MM-DD'")]


class Payment(TypedDict):
    """One payment method of the user's profile and the amount it pays."""

    payment_id: Annotated[
        str, Field(description="a payment method id of the profile, e.g. 'gift_card_1234567'")
    ]
    amount: Annotated[Number, Field(description="the amount this method pays")]


Flights = AsSent[list[FlightRef]]
"""The flights of an itinerary, in order."""
Passengers = AsSent[list[Passenger]]
"""The passengers of a reservation."""
Payments = AsSent[list[Payment]]
"""The payment methods of a booking and what each pays."""


Cabin = Literal["basic_economy", "economy", "business"]


# --- look-ups ------------------------------------------------------------------------------------


def _origin(flight: Record) -> str:
    return str(flight["origin"])


def _destination(flight: Record) -> str:
    return str(flight["destination"])


def _route(flight: Record) -> tuple[str, str]:
    return (flight["origin"], flight["destination"])


def _user(db: Fork, user_id: str) -> Record:
    user = db.get("users", user_id)
    if user is None:
        raise ToolError("user not found")
    return user


def _reservation(db: Fork, reservation_id: str) -> Record:
    reservation = db.get("reservations", reservation_id)
    if reservation is None:
        raise ToolError("reservation not found")
    return reservation


def _listing(flight: Record, day: Record) -> Record:
    """A flight as searches show it: everything but the calendar, plus the one day's status."""
    shown = {key: value for key, value in flight.items() if key != "dates"}
    shown.update(day)
    return shown


def _priced_segment(db: Fork, flight: FlightRef, cabin: str, passengers: int) -> Record:
    """The segment ``flight`` booked in ``cabin`` at today's price; it must be bookable for everyone."""
    number, day = flight["flight_number"], flight["date"]
    record = db.get("flights", number)
    if record is None:
        raise ToolError(f"flight {number} not found")
    status = record["dates"].get(day)
    if status is None:
        raise ToolError(f"flight {number} not found on date {day}")
    if status["status"] != "available":
        raise ToolError(f"flight {number} not available on date {day}")
    if status["available_seats"][cabin] < passengers:
        raise ToolError(f"not enough seats on flight {number}")
    return {
        **flight,
        "price": status["prices"][cabin],
        "origin": record["origin"],
        "destination": record["destination"],
    }


def _kept_or_priced(db: Fork, reservation: Record, flight: FlightRef, cabin: str) -> Record:
    """A segment of a changed itinerary: kept at its price if already booked in the same cabin."""
    if cabin == reservation["cabin"]:
        for old in reservation["flights"]:
            if old["flight_number"] == flight["flight_number"] and old["date"] == flight["date"]:
                return {
                    **flight,
                    "price": old["price"],
                    "origin": old["origin"],
                    "destination": old["destination"],
                }
    return _priced_segment(db, flight, cabin, len(reservation["passengers"]))


def _change_method(db: Fork, reservation: Record, payment_id: str, amount: float) -> Record:
    """The profile method paying ``amount`` for a change: not a certificate; a gift card must cover it."""
    method = _user(db, reservation["user_id"])["payment_methods"].get(payment_id)
    if method is None:
        raise ToolError("payment method not found")
    if method["source"] == CHANGE_FORBIDDEN_SOURCE:
        raise ToolError("certificate cannot be used to update reservation")
    if method["source"] == "gift_card" and method["amount"] < amount:
        raise ToolError("gift card balance is not enough")
    return method


def _charge_change(db: Fork, reservation_id: str, payment_id: str, amount: float) -> Record:
    """Charge (or refund, when negative) ``amount`` of a change; return the writable reservation."""
    reservation = db.write_path("reservations", reservation_id)
    user_id = reservation["user_id"]
    if db.get("users", user_id)["payment_methods"][payment_id]["source"] == "gift_card":
        db.write_path("users", user_id, "payment_methods", payment_id)["amount"] -= amount
    if amount != 0:
        db.write_path("reservations", reservation_id, "payment_history").append(
            {"payment_id": payment_id, "amount": amount}
        )
    return reservation


def _new_reservation_id(db: Fork) -> str:
    for reservation_id in RESERVATION_IDS:
        if db.get("reservations", reservation_id) is None:
            return reservation_id
    raise ToolError("too many new reservations")


def _check_booking_payments(user: Record, payments: list[Payment], total: float) -> None:
    """Every method is in the profile, balances cover their part, and the parts add up to ``total``."""
    methods = user["payment_methods"]
    for payment in payments:
        payment_id, amount = payment["payment_id"], payment["amount"]
        if payment_id not in methods:
            raise ToolError(f"payment method {payment_id} not found")
        if (
            methods[payment_id]["source"] in ("gift_card", "certificate")
            and methods[payment_id]["amount"] < amount
        ):
            raise ToolError(f"not enough balance in payment method {payment_id}")
    paid = sum(payment["amount"] for payment in payments)
    if paid != total:
        raise ToolError(f"payment amount does not add up, total price is {total}, but paid {paid}")


def _pay_booking(db: Fork, user_id: str, payments: list[Payment]) -> None:
    """Take the booking's payments: gift cards are debited, certificates are used up."""
    for payment in payments:
        payment_id = payment["payment_id"]
        method = db.get("users", user_id)["payment_methods"].get(payment_id)
        if method is not None and method["source"] == "gift_card":
            db.write_path("users", user_id, "payment_methods", payment_id)["amount"] -= payment["amount"]
        elif method is not None and method["source"] == "certificate":
            del db.write_path("users", user_id, "payment_methods")[payment_id]


# --- tools ---------------------------------------------------------------------------------------


@tool(ToolKind.WRITE)
def book_reservation(
    db: Fork,
    user_id: str,
    origin: str,
    destination: str,
    flight_type: Literal["one_way", "round_trip"],
    cabin: Cabin,
    flights: Flights,
    passengers: Passengers,
    payment_methods: Payments,
    total_baggages: int,
    nonfree_baggages: int,
    insurance: Literal["yes", "no"],
) -> str:
    """Book a new reservation; the payments must add up to the total price exactly.

    Args:
        user_id: the id of the user who books, e.g. 'sara_doe_496'.
        origin: IATA code of the trip's origin, e.g. 'SFO'.
        destination: IATA code of the trip's destination, e.g. 'JFK'.
        flight_type: 'one_way' or 'round_trip'.
        cabin: one cabin for every flight and passenger: 'basic_economy', 'economy' or 'business'.
        flights: every flight of the trip, in order, each with its flight number and date.
        passengers: every traveller: first name, last name and date of birth.
        payment_methods: the profile's payment methods and the amount each pays.
        total_baggages: the number of checked bags of the whole reservation.
        nonfree_baggages: how many of those bags are paid for ($50 each).
        insurance: 'yes' to buy travel insurance ($30 per passenger), otherwise 'no'.
    """
    user = _user(db, user_id)
    reservation_id = _new_reservation_id(db)
    count = len(passengers)
    segments = [_priced_segment(db, flight, cabin, count) for flight in flights]
    total = sum(segment["price"] * count for segment in segments)
    if insurance == "yes":
        total += INSURANCE_FEE * count
    total += BAG_FEE * nonfree_baggages
    _check_booking_payments(user, payment_methods, total)
    reservation = {
        "reservation_id": reservation_id,
        "user_id": user_id,
        "origin": origin,
        "destination": destination,
        "flight_type": flight_type,
        "cabin": cabin,
        "flights": segments,
        "passengers": passengers,
        "payment_history": payment_methods,
        "created_at": NOW_TEXT,
        "total_baggages": total_baggages,
        "nonfree_baggages": nonfree_baggages,
        "insurance": insurance,
    }
    _pay_booking(db, user_id, payment_methods)
    db.write_path("users", user_id, "reservations").append(reservation_id)
    return dumps(db.insert("reservations", reservation_id, reservation, handed_over=True))


@tool(ToolKind.WRITE)
def cancel_reservation(db: Fork, reservation_id: str) -> str:
    """Cancel a whole reservation: every payment is refunded to the method that made it.

    Args:
        reservation_id: the reservation id, e.g. 'ZFA04Y'.
    """
    _reservation(db, reservation_id)
    reservation = db.write_path("reservations", reservation_id)
    history = db.write_path("reservations", reservation_id, "payment_history")
    history.extend([{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in history])
    reservation["status"] = "cancelled"
    return dumps(reservation)


@tool(ToolKind.READ)
def get_reservation_details(db: Fork, reservation_id: str) -> str:
    """Get a reservation: route, trip type, cabin, flights with prices, passengers, payments, bags, insurance.

    Args:
        reservation_id: the reservation id, e.g. 'ZFA04Y'.
    """
    return dumps(_reservation(db, reservation_id))


@tool(ToolKind.READ)
def get_user_details(db: Fork, user_id: str) -> str:
    """Get a user's profile: name, address, birth date, payment methods, passengers, membership, reservations.

    Args:
        user_id: the user id, e.g. 'sara_doe_496'.
    """
    return dumps(_user(db, user_id))


@tool(ToolKind.READ)
def list_all_airports(db: Fork) -> str:
    """List every airport served, as a map from IATA code to city."""
    base = db.base
    served = set(base.index("flights", _origin)) | set(base.index("flights", _destination))
    known = {code: city for code, city in AIRPORT_CITIES.items() if code in served}
    unknown = {code: code for code in sorted(served - set(AIRPORT_CITIES), key=str)}
    return dumps({**known, **unknown})


@tool(ToolKind.READ)
def search_direct_flight(db: Fork, origin: str, destination: str, date: str) -> str:
    """Search the nonstop flights between two airports that can be booked on a date.

    Args:
        origin: IATA code of the departure airport, e.g. 'JFK'.
        destination: IATA code of the arrival airport, e.g. 'LAX'.
        date: the travel date, 'YYYY-MM-DD'.
    """
    found = []
    for key in db.find("flights", _route, (origin, destination)):
        flight = db.get("flights", key)
        day = flight["dates"].get(date)
        if day is not None and day["status"] == "available":
            found.append(_listing(flight, day))
    return dumps(found)


@tool(ToolKind.READ)
def search_onestop_flight(db: Fork, origin: str, destination: str, date: str) -> str:
    """Search the one-stop connections between two airports that can be booked, leaving on a date.

    The second flight leaves after the first one lands, the same day or (after an overnight first
    flight) the next day; each flight is shown with its own date.

    Args:
        origin: IATA code of the departure airport, e.g. 'JFK'.
        destination: IATA code of the final arrival airport, e.g. 'LAX'.
        date: the departure date of the first flight, 'YYYY-MM-DD'.
    """
    found = []
    for key in db.find("flights", _origin, origin):
        first = db.get("flights", key)
        day = first["dates"].get(date)
        if day is None or day["status"] != "available":
            continue
        arrival = first["scheduled_arrival_time_est"]
        connection_date = next_day(date) if "+1" in arrival else date
        for second_key in db.find("flights", _route, (first["destination"], destination)):
            second = db.get("flights", second_key)
            second_day = second["dates"].get(connection_date)
            if arrival > second["scheduled_departure_time_est"] or second_day is None:
                continue
            if second_day["status"] == "available":
                found.append(
                    [
                        {**_listing(first, day), "date": date},
                        {**_listing(second, second_day), "date": connection_date},
                    ]
                )
    return dumps(found)


@tool(ToolKind.WRITE)
def send_certificate(db: Fork, user_id: str, amount: Number) -> str:
    """Add a travel certificate to a user's payment methods, as compensation. Only when the policy allows it.

    Args:
        user_id: the id of the user who receives it, e.g. 'sara_doe_496'.
        amount: the certificate's value in dollars.
    """
    methods = _user(db, user_id)["payment_methods"]
    payment_id = next((c for c in CERTIFICATE_IDS if c not in methods), None)
    if payment_id is None:
        raise ToolError("too many certificates")
    certificate = {"source": "certificate", "amount": amount, "id": payment_id}
    db.write_path("users", user_id, "payment_methods")[payment_id] = certificate
    return f"Certificate {payment_id} added to user {user_id} with amount {amount}."


@tool(ToolKind.WRITE)
def update_reservation_baggages(
    db: Fork, reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str
) -> str:
    """Set a reservation's checked bags; each added paid bag costs $50.

    Args:
        reservation_id: the reservation id, e.g. 'ZFA04Y'.
        total_baggages: the new total number of checked bags of the reservation.
        nonfree_baggages: the new number of paid bags among them.
        payment_id: a credit card or gift card of the profile, paying for added paid bags.
    """
    reservation = _reservation(db, reservation_id)
    amount = BAG_FEE * max(0, nonfree_baggages - reservation["nonfree_baggages"])
    _change_method(db, reservation, payment_id, amount)
    reservation = _charge_change(db, reservation_id, payment_id, amount)
    reservation["total_baggages"] = total_baggages
    reservation["nonfree_baggages"] = nonfree_baggages
    return dumps(reservation)


@tool(ToolKind.WRITE)
def update_reservation_flights(
    db: Fork, reservation_id: str, cabin: Cabin, flights: Flights, payment_id: str
) -> str:
    """Replace a reservation's flights and cabin; the fare difference is charged or refunded.

    Args:
        reservation_id: the reservation id, e.g. 'ZFA04Y'.
        cabin: the cabin of the whole reservation after the change.
        flights: EVERY flight of the new itinerary, unchanged ones included, each with number and date.
        payment_id: a credit card or gift card of the profile that pays or receives the difference.
    """
    reservation = _reservation(db, reservation_id)
    count = len(reservation["passengers"])
    segments = [_kept_or_priced(db, reservation, flight, cabin) for flight in flights]
    difference = sum(segment["price"] * count for segment in segments)
    difference -= sum(old["price"] for old in reservation["flights"]) * count
    _change_method(db, reservation, payment_id, difference)
    reservation = _charge_change(db, reservation_id, payment_id, difference)
    reservation["flights"] = segments
    reservation["cabin"] = cabin
    return dumps(reservation)


@tool(ToolKind.WRITE)
def update_reservation_passengers(db: Fork, reservation_id: str, passengers: Passengers) -> str:
    """Replace the details of a reservation's passengers; their number cannot change.

    Args:
        reservation_id: the reservation id, e.g. 'ZFA04Y'.
        passengers: every passenger after the change, in the reservation's order.
    """
    reservation = _reservation(db, reservation_id)
    if len(passengers) != len(reservation["passengers"]):
        raise ToolError("number of passengers does not match")
    db.write_path("reservations", reservation_id)["passengers"] = passengers
    return dumps(db.get("reservations", reservation_id))


TOOLS = ToolSet(
    [
        book_reservation,
        calculate,
        cancel_reservation,
        get_reservation_details,
        get_user_details,
        list_all_airports,
        search_direct_flight,
        search_onestop_flight,
        send_certificate,
        think,
        transfer_to_human_agents,
        update_reservation_baggages,
        update_reservation_flights,
        update_reservation_passengers,
    ]
)
