"""The travel agency's tools: look-ups and searches, bookings, changes, cancellations, the profile.

Reads return JSON (``apigen_gym.core.tools.dumps``); writes return the changed trip (or profile part) as
JSON. Prices are in US dollars. Every check that the booking systems themselves make (seats, rooms,
cars, balances, fare rules, dates) is enforced here; the agency's own policy (budgets, passports,
driver age, the insurance window) is left to the agent and checked by the rules.

Arguments are strict, nested ones included: a flight to book is exactly a flight number and a date,
and any other key is refused (unlike τ-bench's airline tools, which keep what they do not read).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field
from typing_extensions import TypedDict

from apigen_gym.core.database import Fork, Record, StateView
from apigen_gym.core.tools import ToolError, ToolKind, ToolSet, dumps, tool
from apigen_gym.domains.travel import booking as bk
from apigen_gym.domains.travel import terms
from apigen_gym.kit.common_tools import calculate, think, transfer_to_human_agents

CarClass = Literal["economy", "compact", "midsize", "suv", "premium", "van"]


class FlightChoice(TypedDict):
    """One flight to book: exactly these two keys (strict: any other key is refused)."""

    flight_number: Annotated[str, Field(description="the flight number, e.g. 'NX204'")]
    date: Annotated[str, Field(description="the date of that flight, YYYY-MM-DD")]


# --- indexes (module-level key functions, so that the database caches each index once) ----------


def _email_key(user: Record) -> str:
    return str(user["email"]).lower()


def _name_birth_key(user: Record) -> tuple[str, str, str]:
    name = user["name"]
    return (name["first_name"].lower(), name["last_name"].lower(), user["birth_date"])


def _route_key(flight: Record) -> tuple[str, str]:
    return (flight["origin"], flight["destination"])


def _city_key(record: Record) -> str:
    return str(record["city"]).lower()


def _only_user(db: Fork, key_fn: Callable[[Record], Hashable], value: Hashable) -> str:
    found = db.find("users", key_fn, value)
    if not found:
        raise ToolError("user not found")
    return found[0]


def _records(db: Fork, table: str, key_fn: Callable[[Record], Hashable], value: Hashable) -> Iterator[Record]:
    for key in db.find(table, key_fn, value):
        yield db.get(table, key)


def _city(db: StateView, city: str) -> str:
    """A city name, also accepting an airport code ('LIS' → 'lisbon'), lower-cased."""
    airport = db.get("airports", city.strip().upper())
    return str(airport["city"] if airport is not None else city).strip().lower()


def _clock(value: str | None, what: str) -> str | None:
    return None if value is None else terms.parse_clock(value, what)


# --- identification and profile -----------------------------------------------------------------


@tool(ToolKind.READ)
def find_user_id_by_email(db: Fork, email: str) -> str:
    """Find a user id by email address (case-insensitive).

    Args:
        email: the user's email, e.g. 'maya.chen42@example.com'.
    """
    return _only_user(db, _email_key, email.strip().lower())


@tool(ToolKind.READ)
def find_user_id_by_name_birth_date(db: Fork, first_name: str, last_name: str, birth_date: str) -> str:
    """Find a user id by first and last name (case-insensitive) and date of birth.

    Args:
        first_name: the user's first name.
        last_name: the user's last name.
        birth_date: the user's date of birth, YYYY-MM-DD.
    """
    terms.parse_day(birth_date, "birth_date")
    key = (first_name.strip().lower(), last_name.strip().lower(), birth_date)
    return _only_user(db, _name_birth_key, key)


@tool(ToolKind.READ)
def get_user_details(db: Fork, user_id: str) -> str:
    """Get a user's profile: loyalty tier and points, corporate budget, payment methods, travellers, trips.

    Args:
        user_id: the user id, e.g. 'maya_chen_1042'.
    """
    return dumps(bk.get_user(db, user_id))


@tool(ToolKind.READ)
def get_trip_details(db: Fork, trip_id: str) -> str:
    """Get a trip: travellers, flight segments, hotel stays, car rentals, insurance, payments and status.

    Args:
        trip_id: the trip id, e.g. 'TR482913'.
    """
    return dumps(bk.get_trip(db, trip_id))


# --- places, flights, hotels, cars, money -------------------------------------------------------


@tool(ToolKind.READ)
def list_airports(db: Fork, country: str | None = None) -> str:
    """List the airports served (code, name, city, country, time zone, currency), optionally of one country.

    Args:
        country: only airports in this country, e.g. 'Japan' (case-insensitive); omit for all.
    """
    wanted = None if country is None else country.strip().lower()
    rows = [
        {k: a[k] for k in ("code", "name", "city", "country", "time_zone", "currency")}
        for _, a in db.items("airports")
        if wanted is None or a["country"].lower() == wanted
    ]
    return dumps(rows)


def _flight_row(flight: Record, day: str, cabin: str) -> Record:
    record = flight["dates"][day]
    return {
        "flight_number": flight["flight_number"],
        "carrier": flight["carrier"],
        "origin": flight["origin"],
        "destination": flight["destination"],
        "date": day,
        "departure_time": flight["departure_time"],
        "arrival_time": flight["arrival_time"],
        "arrival_day_offset": flight["arrival_day_offset"],
        "duration_minutes": flight["duration_minutes"],
        "stops": flight["stops"],
        "via": flight["via"],
        "cabin": cabin,
        "price": record["prices"][cabin],
        "seats_left": record["seats"][cabin],
    }


def _carrier_matches(flight: Record, carrier: str | None) -> bool:
    if carrier is None:
        return True
    wanted = carrier.strip().lower()
    return wanted in (flight["carrier"].lower(), flight["carrier_code"].lower())


@tool(ToolKind.READ)
def search_flights(
    db: Fork,
    origin: str,
    destination: str,
    date: str,
    cabin: terms.Cabin = "economy",
    travellers: int = 1,
    max_price: float | None = None,
    depart_after: str | None = None,
    arrive_before: str | None = None,
    max_stops: int | None = None,
    carrier: str | None = None,
) -> str:
    """Search bookable flights on one date, cheapest first (then earliest). Times are local to each airport.

    Args:
        origin: departure airport code, e.g. 'JFK'.
        destination: arrival airport code, e.g. 'LHR'.
        date: departure date, YYYY-MM-DD.
        cabin: basic_economy, economy or business; prices and seats are for this cabin.
        travellers: number of seats needed.
        max_price: highest price per traveller in USD (inclusive).
        depart_after: earliest local departure time, HH:MM (inclusive).
        arrive_before: latest local arrival time, HH:MM (inclusive), landing on the departure date.
        max_stops: 0 for non-stop flights only, 1 to allow one stop.
        carrier: only this airline, by name or two-letter code.
    """
    origin, destination = bk.get_airport(db, origin)["code"], bk.get_airport(db, destination)["code"]
    terms.parse_day(date)
    if travellers < 1:
        raise ToolError("travellers must be at least 1")
    after, before = _clock(depart_after, "depart_after"), _clock(arrive_before, "arrive_before")
    rows = []
    for flight in _records(db, "flights", _route_key, (origin, destination)):
        try:
            price = bk.bookable_fare(db, flight, date, cabin, travellers)
        except ToolError:
            continue
        if (
            (max_price is not None and price > max_price)
            or (after is not None and flight["departure_time"] < after)
            or (before is not None and (flight["arrival_day_offset"] or flight["arrival_time"] > before))
            or (max_stops is not None and flight["stops"] > max_stops)
            or not _carrier_matches(flight, carrier)
        ):
            continue
        rows.append(_flight_row(flight, date, cabin))
    rows.sort(key=lambda r: (r["price"], r["departure_time"], r["flight_number"]))
    return dumps(rows)


@tool(ToolKind.READ)
def get_flight_details(db: Fork, flight_number: str, date: str | None = None) -> str:
    """Get a flight's schedule, carrier, stops and, per date, its status, seats and prices per cabin.

    Args:
        flight_number: the flight number, e.g. 'NX204'.
        date: only this date, YYYY-MM-DD; omit for every date on sale.
    """
    flight = bk.get_flight(db, flight_number)
    if date is None:
        return dumps(flight)
    details = {k: v for k, v in flight.items() if k != "dates"}
    return dumps({**details, "date": date, **bk.flight_day(flight, date)})


@tool(ToolKind.READ)
def get_flight_status(db: Fork, flight_number: str, date: str) -> str:
    """Get a flight's status on a date: scheduled, delayed (with the delay), departed, landed or cancelled.

    Args:
        flight_number: the flight number, e.g. 'NX204'.
        date: the departure date, YYYY-MM-DD.
    """
    flight = bk.get_flight(db, flight_number)
    day = bk.flight_day(flight, date)
    status = {
        "flight_number": flight["flight_number"],
        "date": date,
        "origin": flight["origin"],
        "destination": flight["destination"],
        "departure_time": flight["departure_time"],
        "arrival_time": flight["arrival_time"],
        "status": day["status"],
    }
    if "delay_minutes" in day:
        status["delay_minutes"] = day["delay_minutes"]
    return dumps(status)


def _room_rows(hotel: Record, nights: list[str], rooms: int) -> Iterator[Record]:
    for key, room in hotel["room_types"].items():
        if all(room["availability"].get(night, 0) >= rooms for night in nights):
            yield {
                "hotel_id": hotel["hotel_id"],
                "name": hotel["name"],
                "city": hotel["city"],
                "stars": hotel["stars"],
                "distance_to_airport_km": hotel["distance_to_airport_km"],
                "room_type": key,
                "room_name": room["name"],
                "max_guests": room["max_guests"],
                "nightly_rate": room["nightly_rate"],
                "nights": len(nights),
                "rooms": rooms,
                "total": terms.money(room["nightly_rate"] * len(nights) * rooms),
                "refundable": room["refundable"],
                "free_cancellation_hours": room["free_cancellation_hours"],
            }


@tool(ToolKind.READ)
def search_hotels(
    db: Fork,
    city: str,
    check_in: str,
    check_out: str,
    rooms: int = 1,
    min_stars: int | None = None,
    max_nightly_rate: float | None = None,
    refundable_only: bool = False,
    max_distance_km: float | None = None,
) -> str:
    """Search hotel rooms available for every night of a stay, cheapest nightly rate first.

    Args:
        city: the city, e.g. 'Lisbon', or its airport code, e.g. 'LIS'.
        check_in: arrival date, YYYY-MM-DD (after today).
        check_out: departure date, YYYY-MM-DD.
        rooms: number of rooms needed.
        min_stars: lowest star rating (1-5).
        max_nightly_rate: highest nightly rate per room in USD (inclusive).
        refundable_only: only rates that can be cancelled for a refund.
        max_distance_km: greatest distance from the airport in km (inclusive).
    """
    first, last = bk.future_range(check_in, check_out, ("check_in", "check_out"))
    if rooms < 1:
        raise ToolError("rooms must be at least 1")
    nights = terms.days_between(first, last)
    rows = []
    for hotel in _records(db, "hotels", _city_key, _city(db, city)):
        if (min_stars is not None and hotel["stars"] < min_stars) or (
            max_distance_km is not None and hotel["distance_to_airport_km"] > max_distance_km
        ):
            continue
        for row in _room_rows(hotel, nights, rooms):
            if (max_nightly_rate is None or row["nightly_rate"] <= max_nightly_rate) and (
                row["refundable"] or not refundable_only
            ):
                rows.append(row)
    rows.sort(key=lambda r: (r["nightly_rate"], r["hotel_id"], r["room_type"]))
    return dumps(rows)


@tool(ToolKind.READ)
def get_hotel_details(db: Fork, hotel_id: str) -> str:
    """Get a hotel: address, stars, distance to the airport, check-in time, room types with rates,
    cancellation terms and rooms left per night.

    Args:
        hotel_id: the hotel id, e.g. 'HLIS01'.
    """
    return dumps(bk.get_hotel(db, hotel_id))


@tool(ToolKind.READ)
def search_cars(
    db: Fork,
    city: str,
    pickup_date: str,
    dropoff_date: str,
    car_class: CarClass | None = None,
    max_daily_rate: float | None = None,
) -> str:
    """Search rental cars available for every day from pickup to drop-off, cheapest daily rate first.

    Args:
        city: the city, e.g. 'Denver', or its airport code, e.g. 'DEN'.
        pickup_date: pickup date, YYYY-MM-DD (after today).
        dropoff_date: drop-off date, YYYY-MM-DD; days charged = drop-off minus pickup.
        car_class: only this class: economy, compact, midsize, suv, premium or van.
        max_daily_rate: highest daily rate in USD (inclusive).
    """
    first, last = bk.future_range(pickup_date, dropoff_date, ("pickup_date", "dropoff_date"))
    days = terms.days_between(first, last)
    rows = []
    for car in _records(db, "cars", _city_key, _city(db, city)):
        if (
            (car_class is not None and car["car_class"] != car_class)
            or (max_daily_rate is not None and car["daily_rate"] > max_daily_rate)
            or any(car["availability"].get(d, 0) < 1 for d in days)
        ):
            continue
        offer = {k: car[k] for k in ("car_id", "company", "car_class", "description", "seats", "daily_rate")}
        total = terms.money(car["daily_rate"] * len(days))
        rows.append({**offer, "days": len(days), "total": total, "min_driver_age": car["min_driver_age"]})
    rows.sort(key=lambda r: (r["daily_rate"], r["car_id"]))
    return dumps(rows)


@tool(ToolKind.READ)
def convert_currency(db: Fork, amount: float, from_currency: str, to_currency: str) -> str:
    """Convert an amount between currencies at today's rate; the result is rounded to cents.

    Args:
        amount: the amount to convert, e.g. 250.
        from_currency: the three-letter code of its currency, e.g. 'USD'.
        to_currency: the three-letter code of the wanted currency, e.g. 'EUR'.
    """
    rates = []
    for code in (from_currency, to_currency):
        rate = db.get("exchange_rates", code.strip().upper())
        if rate is None:
            raise ToolError(f"unknown currency {code!r}")
        rates.append(rate)
    source, target = rates
    rate = source["usd_per_unit"] / target["usd_per_unit"]
    converted = terms.money(amount * rate)
    return dumps(
        {
            "amount": amount,
            "from": source["code"],
            "to": target["code"],
            "rate": round(rate, 6),
            "converted": converted,
        }
    )


# --- money movements ----------------------------------------------------------------------------


def _adjust_credit(db: Fork, user_id: str, method_id: str, delta: float) -> None:
    """Add ``delta`` to a travel credit's balance (cards keep no balance)."""
    if db.get("users", user_id)["payment_methods"][method_id]["type"] == "travel_credit":
        method = db.write_path("users", user_id, "payment_methods", method_id)
        method["balance"] = terms.money(method["balance"] + delta)


def _charge(db: Fork, trip: Record, method_id: str, amount: float, item: str) -> None:
    if amount > 0:
        _adjust_credit(db, trip["user_id"], method_id, -amount)
        _writable_part(db, trip, "payments").append(bk.payment("charge", amount, method_id, item))


def _refund(db: Fork, trip: Record, method_id: str, amount: float, item: str) -> None:
    if amount > 0:
        _adjust_credit(db, trip["user_id"], method_id, amount)
        _writable_part(db, trip, "payments").append(bk.payment("refund", amount, method_id, item))


def _settle(db: Fork, trip: Record, net: float, pay_with: str, refund_to: str, item: str) -> None:
    """Charge a positive ``net`` to ``pay_with``; refund a negative one to ``refund_to``."""
    _charge(db, trip, pay_with, net, item)
    _refund(db, trip, refund_to, -net, item)


# --- inventory ----------------------------------------------------------------------------------


def _seats(db: Fork, flight_number: str, day: str, cabin: str, delta: int) -> None:
    db.write_path("flights", flight_number, "dates", day, "seats")[cabin] += delta


def _rooms(db: Fork, stay: Record, delta: int) -> None:
    nights = terms.days_between(terms.parse_day(stay["check_in"]), terms.parse_day(stay["check_out"]))
    path = ("room_types", stay["room_type"], "availability")
    availability = db.write_path("hotels", stay["hotel_id"], *path)
    for night in nights:
        availability[night] += delta * stay["rooms"]


def _cars(db: Fork, rental: Record, delta: int) -> None:
    days = terms.days_between(terms.parse_day(rental["pickup_date"]), terms.parse_day(rental["dropoff_date"]))
    availability = db.write_path("cars", rental["car_id"], "availability")
    for day in days:
        availability[day] += delta


def _writable(db: Fork, trip: Record) -> Record:
    """The trip's top level, to change; its lists are copied when they change (:func:`_writable_part`)."""
    return db.write_path("trips", trip["trip_id"])  # type: ignore[no-any-return]


def _writable_part(db: Fork, trip: Record, kind: str) -> list[Record]:
    """The trip's list ``kind`` ("payments", "hotels", ...), to change."""
    return db.write_path("trips", trip["trip_id"], kind)  # type: ignore[no-any-return]


def _writable_component(db: Fork, trip: Record, kind: str, key: str, component_id: Any) -> Record:
    """The flight segment, stay or rental ``component_id`` of ``trip``, to change."""
    for position, found in enumerate(trip[kind]):
        if found[key] == component_id:
            return db.write_path("trips", trip["trip_id"], kind, position)  # type: ignore[no-any-return]
    return bk.component(trip, kind, key, component_id)  # not part of the trip: its error


def _writable_active(db: Fork, trip: Record, kind: str) -> list[Record]:
    """The components of ``kind`` still booked, to change."""
    return [
        db.write_path("trips", trip["trip_id"], kind, position)
        for position, found in enumerate(trip[kind])
        if found["status"] == bk.ACTIVE
    ]


def _close_if_empty(trip: Record) -> None:
    """A trip with nothing left booked is cancelled."""
    if not any(bk.active(trip[kind]) for kind in ("flights", "hotels", "cars")):
        trip["status"] = bk.CANCELLED


# --- bookings -----------------------------------------------------------------------------------


@tool(ToolKind.WRITE)
def book_trip(
    db: Fork,
    user_id: str,
    traveller_ids: list[str],
    flights: list[FlightChoice],
    cabin: terms.Cabin,
    payment_method_id: str,
    insurance: bool = False,
) -> str:
    """Book a new trip: flights for saved travellers, all in one cabin, paid with one method of the user.

    Args:
        user_id: the user who books and pays.
        traveller_ids: ids of travellers saved in the user's profile, e.g. ['trv_1', 'trv_2'].
        flights: the flights in travel order, each exactly {"flight_number": "NX204", "date": "2025-03-20"}
            (no other keys: they are refused).
        cabin: basic_economy, economy or business, for every flight.
        payment_method_id: a card or travel credit of the user, e.g. 'card_1234567'.
        insurance: add travel insurance (USD 35 per traveller): full refund of flights if cancelled.
    """
    plan = bk.plan_booking(db, user_id, traveller_ids, flights, cabin, insurance)
    bk.usable_method(plan.user, payment_method_id, plan.total)
    trip_id = bk.next_trip_id(db)
    segments = [
        bk.segment_record(f"F{i}", leg, cabin, payment_method_id) for i, leg in enumerate(plan.legs, 1)
    ]
    trip = db.insert(
        "trips",
        trip_id,
        {
            "trip_id": trip_id,
            "user_id": user_id,
            "status": "booked",
            "created_at": terms.NOW_TEXT,
            "travellers": list(traveller_ids),
            "flights": segments,
            "hotels": [],
            "cars": [],
            "insurance": bk.insurance_record(len(traveller_ids), payment_method_id) if insurance else None,
            "payments": [],
        },
        handed_over=True,
    )
    for leg in plan.legs:
        _seats(db, leg.flight["flight_number"], leg.day, cabin, -len(traveller_ids))
    _charge(db, trip, payment_method_id, plan.fares, " ".join(s["segment_id"] for s in segments))
    _charge(db, trip, payment_method_id, plan.insurance, "insurance")
    db.write_path("users", user_id, "trips").append(trip_id)
    return dumps(trip)


@tool(ToolKind.WRITE)
def add_hotel_stay(
    db: Fork,
    trip_id: str,
    hotel_id: str,
    room_type: str,
    check_in: str,
    check_out: str,
    payment_method_id: str,
    rooms: int = 1,
) -> str:
    """Add a hotel stay to a trip, paid now; every traveller of the trip must fit in the rooms.

    Args:
        trip_id: the trip id.
        hotel_id: the hotel id, e.g. 'HLIS01'.
        room_type: the room type key, e.g. 'standard'.
        check_in: arrival date, YYYY-MM-DD (after today).
        check_out: departure date, YYYY-MM-DD.
        payment_method_id: a card or travel credit of the trip's user.
        rooms: number of rooms.
    """
    plan = bk.plan_stay(db, trip_id, hotel_id, room_type, check_in, check_out, rooms)
    bk.usable_method(bk.trip_owner(db, plan.trip), payment_method_id, plan.total)
    trip = _writable(db, plan.trip)
    stay = bk.stay_record(
        db, bk.next_id("H", (s["stay_id"] for s in trip["hotels"])), plan, payment_method_id
    )
    _writable_part(db, trip, "hotels").append(stay)
    _rooms(db, stay, -1)
    _charge(db, trip, payment_method_id, stay["total"], stay["stay_id"])
    return dumps(trip)


@tool(ToolKind.WRITE)
def add_car_rental(
    db: Fork,
    trip_id: str,
    car_id: str,
    pickup_date: str,
    dropoff_date: str,
    driver_id: str,
    payment_method_id: str,
) -> str:
    """Add a car rental to a trip, paid now; the driver must be one of the trip's travellers.

    Args:
        trip_id: the trip id.
        car_id: the car offer id, e.g. 'CDEN03'.
        pickup_date: pickup date, YYYY-MM-DD (after today).
        dropoff_date: drop-off date, YYYY-MM-DD.
        driver_id: the traveller id of the driver, e.g. 'trv_1'.
        payment_method_id: a card or travel credit of the trip's user.
    """
    plan = bk.plan_rental(db, trip_id, car_id, pickup_date, dropoff_date, driver_id)
    bk.usable_method(bk.trip_owner(db, plan.trip), payment_method_id, plan.total)
    trip = _writable(db, plan.trip)
    rental_id = bk.next_id("C", (c["rental_id"] for c in trip["cars"]))
    rental = bk.rental_record(rental_id, plan, payment_method_id)
    _writable_part(db, trip, "cars").append(rental)
    _cars(db, rental, -1)
    _charge(db, trip, payment_method_id, rental["total"], rental_id)
    return dumps(trip)


@tool(ToolKind.WRITE)
def add_trip_insurance(db: Fork, trip_id: str, payment_method_id: str) -> str:
    """Insure a trip (USD 35 per traveller): its flights become fully refundable if cancelled.

    Args:
        trip_id: the trip id.
        payment_method_id: a card or travel credit of the trip's user.
    """
    trip = bk.open_trip(db, trip_id)
    if trip["insurance"]:
        raise ToolError(f"trip {trip_id} is already insured")
    if trip["status"] != "booked" or any(bk.departed(db, s) for s in bk.active(trip["flights"])):
        raise ToolError(f"trip {trip_id} has already started")
    record = bk.insurance_record(len(trip["travellers"]), payment_method_id)
    bk.usable_method(bk.trip_owner(db, trip), payment_method_id, record["total"])
    trip = _writable(db, trip)
    trip["insurance"] = record
    _charge(db, trip, payment_method_id, record["total"], "insurance")
    return dumps(trip)


# --- changes ------------------------------------------------------------------------------------


@tool(ToolKind.WRITE)
def change_flight(
    db: Fork, trip_id: str, segment_id: str, new_flight_number: str, new_date: str, payment_method_id: str
) -> str:
    """Move one flight segment to another flight on the same route, same cabin. Basic economy cannot change.

    The change fee per traveller (economy 75, business 0; waived for gold and platinum members and
    when the airline cancelled the flight) plus the fare difference is charged; a negative total is
    refunded to the method that paid the flight.

    Args:
        trip_id: the trip id.
        segment_id: the segment to change, e.g. 'F1'.
        new_flight_number: the new flight, e.g. 'NX206'.
        new_date: the new flight's date, YYYY-MM-DD.
        payment_method_id: pays what is due (a card or travel credit of the trip's user).
    """
    plan = bk.plan_flight_change(db, trip_id, segment_id, new_flight_number, new_date)
    bk.usable_method(bk.trip_owner(db, plan.trip), payment_method_id, plan.net)
    trip = _writable(db, plan.trip)
    segment = _writable_component(db, trip, "flights", "segment_id", segment_id)
    n, cabin = plan.travellers, segment["cabin"]
    _seats(db, segment["flight_number"], segment["date"], cabin, n)
    _seats(db, plan.leg.flight["flight_number"], plan.leg.day, cabin, -n)
    _settle(db, trip, plan.net, payment_method_id, segment["payment_method_id"], segment_id)
    replacement = bk.segment_record(segment_id, plan.leg, cabin, segment["payment_method_id"])
    replacement["changed_from"] = f"{segment['flight_number']} {segment['date']}"
    segment.clear()
    segment.update(replacement)
    return dumps(trip)


@tool(ToolKind.WRITE)
def change_cabin(db: Fork, trip_id: str, cabin: terms.Cabin, payment_method_id: str) -> str:
    """Move every booked flight of a trip (none departed) to another cabin; the fare difference is
    charged, or refunded to the method that paid the flights.

    Args:
        trip_id: the trip id.
        cabin: the new cabin: basic_economy, economy or business.
        payment_method_id: pays a higher fare (a card or travel credit of the trip's user).
    """
    plan = bk.plan_cabin_change(db, trip_id, cabin)
    bk.usable_method(bk.trip_owner(db, plan.trip), payment_method_id, plan.net)
    trip = _writable(db, plan.trip)
    n = len(trip["travellers"])
    changed = []
    for old, fare in plan.new_fares:
        segment = _writable_component(db, trip, "flights", "segment_id", old["segment_id"])
        _seats(db, segment["flight_number"], segment["date"], segment["cabin"], n)
        _seats(db, segment["flight_number"], segment["date"], cabin, -n)
        segment.update(cabin=cabin, fare=fare)
        changed.append(segment)
    item = " ".join(s["segment_id"] for s in changed)
    _settle(db, trip, plan.net, payment_method_id, changed[0]["payment_method_id"], item)
    return dumps(trip)


# --- cancellations ------------------------------------------------------------------------------


def _cancel_segment(db: Fork, trip: Record, segment: Record) -> None:
    amount = bk.flight_refund(db, trip, segment)
    _seats(db, segment["flight_number"], segment["date"], segment["cabin"], len(trip["travellers"]))
    segment["status"] = bk.CANCELLED
    _refund(db, trip, segment["payment_method_id"], amount, segment["segment_id"])


def _cancel_stay(db: Fork, trip: Record, stay: Record) -> None:
    amount = bk.stay_refund_now(stay)
    _rooms(db, stay, 1)
    stay["status"] = bk.CANCELLED
    _refund(db, trip, stay["payment_method_id"], amount, stay["stay_id"])


def _cancel_rental(db: Fork, trip: Record, rental: Record) -> None:
    _cars(db, rental, 1)
    rental["status"] = bk.CANCELLED
    _refund(db, trip, rental["payment_method_id"], rental["total"], rental["rental_id"])


def _active_component(db: Fork, trip_id: str, kind: str, key: str, component_id: str) -> Record:
    """A writable copy of the trip, after checking its component can be cancelled; the component is
    found again by the caller in the returned trip."""
    trip = bk.open_trip(db, trip_id)
    found = bk.component(trip, kind, key, component_id)
    if found["status"] != bk.ACTIVE:
        raise ToolError(f"{component_id} is already {found['status']}")
    return trip


@tool(ToolKind.WRITE)
def cancel_flight(db: Fork, trip_id: str, segment_id: str) -> str:
    """Cancel one flight segment of a trip that has not departed, refunding it by the fare rules.

    Refund per traveller: the full fare if the airline cancelled the flight, the trip was booked less
    than 24 hours ago, the trip is insured, or the cabin is business; economy: the fare minus 75
    (nothing withheld for gold and platinum members); basic economy: nothing.

    Args:
        trip_id: the trip id.
        segment_id: the segment to cancel, e.g. 'F2'.
    """
    trip = _active_component(db, trip_id, "flights", "segment_id", segment_id)
    bk.changeable_segment(db, trip, segment_id)
    trip = _writable(db, trip)
    _cancel_segment(db, trip, _writable_component(db, trip, "flights", "segment_id", segment_id))
    _close_if_empty(trip)
    return dumps(trip)


@tool(ToolKind.WRITE)
def cancel_hotel_stay(db: Fork, trip_id: str, stay_id: str) -> str:
    """Cancel a hotel stay that has not begun: refundable rates are refunded in full until the free-
    cancellation time, after it all but one night per room; non-refundable rates refund nothing.

    Args:
        trip_id: the trip id.
        stay_id: the stay to cancel, e.g. 'H1'.
    """
    trip = _active_component(db, trip_id, "hotels", "stay_id", stay_id)
    if bk.started(bk.component(trip, "hotels", "stay_id", stay_id)["check_in"]):
        raise ToolError(f"stay {stay_id} has already begun")
    trip = _writable(db, trip)
    _cancel_stay(db, trip, _writable_component(db, trip, "hotels", "stay_id", stay_id))
    _close_if_empty(trip)
    return dumps(trip)


@tool(ToolKind.WRITE)
def cancel_car_rental(db: Fork, trip_id: str, rental_id: str) -> str:
    """Cancel a car rental before its pickup date, with a full refund.

    Args:
        trip_id: the trip id.
        rental_id: the rental to cancel, e.g. 'C1'.
    """
    trip = _active_component(db, trip_id, "cars", "rental_id", rental_id)
    if bk.started(bk.component(trip, "cars", "rental_id", rental_id)["pickup_date"]):
        raise ToolError(f"rental {rental_id} has already begun")
    trip = _writable(db, trip)
    _cancel_rental(db, trip, _writable_component(db, trip, "cars", "rental_id", rental_id))
    _close_if_empty(trip)
    return dumps(trip)


def trip_started(view: StateView, trip: Record) -> bool:
    """Whether any booked part of the trip has begun (a flight left, a stay or a rental began)."""
    return (
        trip["status"] != "booked"
        or any(bk.departed(view, s) for s in bk.active(trip["flights"]))
        or any(bk.started(s["check_in"]) for s in bk.active(trip["hotels"]))
        or any(bk.started(c["pickup_date"]) for c in bk.active(trip["cars"]))
    )


@tool(ToolKind.WRITE)
def cancel_trip(db: Fork, trip_id: str) -> str:
    """Cancel a whole trip that has not started: every flight, stay and rental is cancelled and refunded
    by its own terms; within 24 hours of booking the insurance is refunded too.

    Args:
        trip_id: the trip id.
    """
    trip = bk.open_trip(db, trip_id)
    if trip_started(db, trip):
        raise ToolError(f"trip {trip_id} has already started; cancel its remaining parts one by one")
    within_grace = terms.within_grace(trip["created_at"])
    trip = _writable(db, trip)
    for segment in _writable_active(db, trip, "flights"):
        _cancel_segment(db, trip, segment)
    for stay in _writable_active(db, trip, "hotels"):
        _cancel_stay(db, trip, stay)
    for rental in _writable_active(db, trip, "cars"):
        _cancel_rental(db, trip, rental)
    if trip["insurance"] and within_grace:
        _refund(db, trip, trip["insurance"]["payment_method_id"], trip["insurance"]["total"], "insurance")
    trip["status"] = bk.CANCELLED
    return dumps(trip)


# --- profile ------------------------------------------------------------------------------------


def _passport(number: str, country: str, expiry: str) -> Record:
    terms.parse_day(expiry, "passport_expiry")
    if not number.strip() or not country.strip():
        raise ToolError("a passport needs a number and a country")
    return {"number": number.strip().upper(), "country": country.strip(), "expiry": expiry}


@tool(ToolKind.WRITE)
def add_traveller(
    db: Fork,
    user_id: str,
    first_name: str,
    last_name: str,
    birth_date: str,
    passport_number: str,
    passport_country: str,
    passport_expiry: str,
) -> str:
    """Save a new traveller (a companion of the user) in the user's profile; returns the traveller.

    Args:
        user_id: the user id.
        first_name: the traveller's first name, as in the passport.
        last_name: the traveller's last name, as in the passport.
        birth_date: the traveller's date of birth, YYYY-MM-DD.
        passport_number: the passport number.
        passport_country: the country that issued the passport, e.g. 'Canada'.
        passport_expiry: the passport's expiry date, YYYY-MM-DD.
    """
    user = bk.get_user(db, user_id)
    if terms.parse_day(birth_date, "birth_date") > terms.TODAY:
        raise ToolError("the birth date is in the future")
    passport = _passport(passport_number, passport_country, passport_expiry)
    for saved in user["travellers"].values():
        if (saved["first_name"].lower(), saved["last_name"].lower(), saved["birth_date"]) == (
            first_name.strip().lower(),
            last_name.strip().lower(),
            birth_date,
        ):
            raise ToolError(f"this traveller is already saved as {saved['traveller_id']}")
    traveller_id = bk.next_id("trv_", user["travellers"])
    record = {
        "traveller_id": traveller_id,
        "first_name": first_name.strip(),
        "last_name": last_name.strip(),
        "birth_date": birth_date,
        "passport": passport,
    }
    db.write_path("users", user_id, "travellers")[traveller_id] = record
    return dumps(record)


@tool(ToolKind.WRITE)
def update_traveller_passport(
    db: Fork,
    user_id: str,
    traveller_id: str,
    passport_number: str,
    passport_country: str,
    passport_expiry: str,
) -> str:
    """Replace the passport of a saved traveller (e.g. after a renewal); returns the traveller.

    Args:
        user_id: the user id.
        traveller_id: the saved traveller, e.g. 'trv_2'.
        passport_number: the new passport's number.
        passport_country: the country that issued it.
        passport_expiry: its expiry date, YYYY-MM-DD.
    """
    bk.traveller(bk.get_user(db, user_id), traveller_id)
    passport = _passport(passport_number, passport_country, passport_expiry)
    record = db.write_path("users", user_id, "travellers", traveller_id)
    record["passport"] = passport
    return dumps(record)


@tool(ToolKind.WRITE)
def redeem_points(db: Fork, user_id: str, points: int) -> str:
    """Turn loyalty points into a travel credit worth USD 0.01 per point, valid for 365 days.

    Args:
        user_id: the user id.
        points: how many points, a positive multiple of 100, at most the user's balance.
    """
    user = bk.get_user(db, user_id)
    balance = user["loyalty"]["points"]
    if points <= 0 or points % terms.POINTS_STEP:
        raise ToolError(f"points must be a positive multiple of {terms.POINTS_STEP}")
    if points > balance:
        raise ToolError(f"the user has only {balance} points")
    method_id = bk.next_id("credit_points_", user["payment_methods"])
    credit = {
        "id": method_id,
        "type": "travel_credit",
        "balance": terms.points_value(points),
        "expires": (terms.TODAY + timedelta(days=terms.POINTS_CREDIT_DAYS)).isoformat(),
        "source": "points",
    }
    db.write_path("users", user_id, "loyalty")["points"] = balance - points
    db.write_path("users", user_id, "payment_methods")[method_id] = credit
    return dumps({"payment_method": credit, "points_left": balance - points})


TOOLS = ToolSet(
    [
        find_user_id_by_email,
        find_user_id_by_name_birth_date,
        get_user_details,
        get_trip_details,
        list_airports,
        search_flights,
        get_flight_details,
        get_flight_status,
        search_hotels,
        get_hotel_details,
        search_cars,
        convert_currency,
        calculate,
        think,
        book_trip,
        add_hotel_stay,
        add_car_rental,
        add_trip_insurance,
        change_flight,
        change_cabin,
        cancel_flight,
        cancel_hotel_stay,
        cancel_car_rental,
        cancel_trip,
        add_traveller,
        update_traveller_passport,
        redeem_points,
        transfer_to_human_agents,
    ]
)
"""The 28 travel tools."""
