"""Seeded generator of the airline database: τ-bench's table shapes, the project's own content.

``generate(seed, scale)`` returns ``{"flights", "reservations", "users"}`` tables keyed by id, with the
record layout of τ-bench's airline database (key order, id formats, field types, the per-date flight
calendar around the fixed clock 2024-05-15 15:00 EST). The network, schedules, fares, people and trips
are drawn here: a hub-and-spoke network over real airports, durations from real distances, statuses
that agree with the clock (landed or cancelled before today, landed / flying / on time / delayed today,
bookable with seats and fares afterwards), and reservations that the airline tools could have made
(fares paid exactly, bags counted by the allowance, some cancelled, some with bags added later).

Only version-stable ``random.Random`` methods are used, so a seed gives the same bytes on every Python
version. ``python -m apigen_gym.domains.airline.generator`` writes the shipped files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from apigen_gym.domains.airline.terms import (
    AIRPORT_CITIES,
    BAG_FEE,
    CABINS,
    INSURANCE_FEE,
    MAX_PASSENGERS,
    NOW,
    next_day,
    nonfree_bags,
)
from apigen_gym.kit.db_generator import Draws, copies, generator_main, scaled, spare_codes

Record = dict[str, Any]
Table = dict[str, Record]

DEFAULT_SEED = 20240515
DEFAULT_OUT = Path(__file__).parent / "db"
BASE_USERS = 500
BASE_RESERVATIONS = 2000
FLIGHTS = 300
CARRIER = "APG"
FIRST_DAY, LAST_DAY = date(2024, 5, 1), date(2024, 5, 30)
BOOKING_START = datetime(2024, 4, 30)
NOW_MINUTES = NOW.hour * 60 + NOW.minute

# (latitude, longitude) of each airport served; real positions give realistic flight times.
AIRPORTS: dict[str, tuple[float, float]] = {
    "ATL": (33.64, -84.43),
    "AUS": (30.19, -97.67),
    "BNA": (36.12, -86.68),
    "BOS": (42.37, -71.01),
    "CLT": (35.21, -80.94),
    "DEN": (39.86, -104.67),
    "DFW": (32.90, -97.04),
    "DTW": (42.21, -83.35),
    "EWR": (40.69, -74.17),
    "IAH": (29.99, -95.34),
    "JFK": (40.64, -73.78),
    "LAS": (36.08, -115.15),
    "LAX": (33.94, -118.41),
    "MCO": (28.43, -81.31),
    "MIA": (25.79, -80.29),
    "MSP": (44.88, -93.22),
    "ORD": (41.97, -87.91),
    "PDX": (45.59, -122.60),
    "PHL": (39.87, -75.24),
    "PHX": (33.43, -112.01),
    "SAN": (32.73, -117.19),
    "SEA": (47.45, -122.31),
    "SFO": (37.62, -122.38),
    "SLC": (40.79, -111.98),
}
HUBS = ("ATL", "DEN", "DFW", "JFK", "LAX", "ORD", "SEA", "SFO")
LINK_CHANCE = {2: 0.85, 1: 0.4, 0: 0.06}
"""Chance that two airports are linked, by how many of the two are hubs."""

# fmt: off
FIRST_NAMES = (
    "Adele", "Amara", "Anders", "Aurora", "Basil", "Bianca", "Cedric", "Chiara", "Dalia", "Declan",
    "Eamon", "Esme", "Felix", "Fiona", "Gideon", "Greta", "Hamid", "Helena", "Idris", "Imogen",
    "Jasper", "Johanna", "Kai", "Kalinda", "Lars", "Lorena", "Malik", "Marisol", "Nikolai", "Noemi",
    "Orla", "Otto", "Pablo", "Petra", "Rafael", "Rhea", "Silas", "Sunita", "Theo", "Tova",
    "Ulric", "Ursula", "Vikram", "Vivian", "Wendell", "Yara", "Yusuf", "Zara",
)
LAST_NAMES = (
    "Achebe", "Bergstrom", "Cardenas", "Delacroix", "Eastwood", "Fontaine", "Gallagher", "Halvorsen",
    "Iwasaki", "Jablonski", "Kapoor", "Lindgren", "Marchetti", "Nakashima", "Oyelaran", "Pacheco",
    "Quiroga", "Rasmussen", "Salazar", "Takahashi", "Underwood", "Valdivia", "Whitaker", "Yilmaz",
    "Zielinski", "Abernathy", "Borisov", "Castellanos", "Dunmore", "Esposito", "Fairbanks", "Granger",
)
STREETS = (
    "Alder Way", "Bluebell Lane", "Briarwood Court", "Cascade Avenue", "Cobblestone Road", "Dogwood Drive",
    "Elmhurst Street", "Fairview Terrace", "Glenwood Avenue", "Hawthorne Street", "Ironwood Lane",
    "Kingfisher Road", "Larkspur Court", "Mulberry Street", "Northgate Drive", "Overlook Road",
    "Pinecrest Avenue", "Riverbend Drive", "Rosewood Lane", "Summit Street", "Thornbury Way",
    "Valley View Road", "Westbrook Avenue", "Wildflower Lane",
)
# (city, state, first three digits of its zip codes)
CITIES = (
    ("Albany", "NY", "122"), ("Asheville", "NC", "288"), ("Bend", "OR", "977"), ("Boulder", "CO", "803"),
    ("Burlington", "VT", "054"), ("Chattanooga", "TN", "374"), ("Columbia", "SC", "292"),
    ("Eugene", "OR", "974"), ("Fort Worth", "TX", "761"), ("Fresno", "CA", "937"),
    ("Grand Rapids", "MI", "495"), ("Greenville", "SC", "296"), ("Indianapolis", "IN", "462"),
    ("Jacksonville", "FL", "322"), ("Knoxville", "TN", "379"), ("Lexington", "KY", "405"),
    ("Lincoln", "NE", "685"), ("Little Rock", "AR", "722"), ("Mesa", "AZ", "852"), ("Norfolk", "VA", "235"),
    ("Pasadena", "CA", "911"), ("Provo", "UT", "846"), ("Reno", "NV", "895"), ("Rochester", "NY", "146"),
    ("San Antonio", "TX", "782"), ("Savannah", "GA", "314"), ("Scottsdale", "AZ", "852"),
    ("Sioux Falls", "SD", "571"), ("Tacoma", "WA", "984"), ("Wichita", "KS", "672"),
)
# fmt: on
UNIT_KINDS = ("Apt", "Suite", "Unit")
CARD_BRANDS = ("visa", "visa", "mastercard", "mastercard", "amex", "discover")
CERTIFICATE_VALUES = (100, 150, 250, 500)
MEMBERSHIP_WEIGHTS = {"regular": 30, "silver": 36, "gold": 34}
PASSENGER_WEIGHTS = (46, 31, 14, 6, 3)
"""Relative frequency of 1..5 passengers on a reservation."""
BAGS_PER_PASSENGER = (0, 0, 0, 1, 1, 2)

PAST_CANCELLED = 0.08
SOLD_OUT = 0.08
DELAYED_TODAY = 0.4
DIRECT_SHARE = 0.5
ROUND_TRIP_SHARE = 0.48
LEAVING_TODAY = 0.06
"""Extra share of trips leaving today (landed, flying, on time or delayed at the clock)."""
INSURED_SHARE = 0.5
SELF_TRAVELS = 0.8
CANCELLED_RESERVATIONS = 0.07
BAGS_ADDED_LATER = 0.05
FREQUENT_FLYERS = 0.25
FREQUENT_PICK = 0.35
GIFT_CARD_BALANCE = (0, 300)


@dataclass
class _Context(Draws):
    """The random source plus what must stay unique across the database."""

    def digits(self, count: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(count))


# --- time ------------------------------------------------------------------------------------------


def _days() -> list[date]:
    return [FIRST_DAY + timedelta(days=n) for n in range((LAST_DAY - FIRST_DAY).days + 1)]


def _clock(minutes: int) -> str:
    """A scheduled time of day, 'HH:MM:SS', with '+1' when it falls on the next day."""
    suffix = "+1" if minutes >= 24 * 60 else ""
    minutes %= 24 * 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00{suffix}"


def _stamp(day: date, minutes: int) -> str:
    """The ISO timestamp ``minutes`` after midnight of ``day`` (may roll into the next days)."""
    return (datetime.combine(day, datetime.min.time()) + timedelta(minutes=minutes)).isoformat()


# --- the network and the flight calendar -----------------------------------------------------------


def _minutes_between(a: str, b: str) -> int:
    """Block time from ``a`` to ``b``: great-circle distance at 500 mph plus 30 minutes, in half hours."""
    (lat1, lon1), (lat2, lon2) = (tuple(map(math.radians, AIRPORTS[x])) for x in (a, b))
    arc = math.acos(
        min(1.0, math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(lon1 - lon2))
    )
    miles = 3959 * arc
    return max(60, 30 * round((miles / 500 * 60 + 30) / 30))


def _routes(rng: random.Random) -> list[tuple[str, str]]:
    """Directed routes: linked airports are served both ways; every airport has at least two links."""
    codes = list(AIRPORTS)
    links = [
        (a, b)
        for i, a in enumerate(codes)
        for b in codes[i + 1 :]
        if rng.random() < LINK_CHANCE[(a in HUBS) + (b in HUBS)]
    ]
    for code in codes:
        while sum(code in link for link in links) < 2:
            hub = rng.choice([h for h in HUBS if h != code and tuple(sorted((code, h))) not in links])
            links.append((min(code, hub), max(code, hub)))
    return [route for a, b in links for route in ((a, b), (b, a))]


def _fares(rng: random.Random, minutes: int) -> dict[str, int]:
    """Base fares of a flight per cabin, growing with its length."""
    basic = round(42 + 9 * minutes / 60 + rng.uniform(-6, 6))
    economy = round(basic * rng.uniform(1.7, 2.2))
    return {"basic_economy": basic, "economy": economy, "business": round(economy * rng.uniform(2.0, 2.8))}


def _landed(rng: random.Random, day: date, departure: int, minutes: int) -> Record:
    leave = departure + rng.randint(-20, 35)
    return {
        "status": "landed",
        "actual_departure_time_est": _stamp(day, leave),
        "actual_arrival_time_est": _stamp(day, leave + minutes + rng.randint(-25, 25)),
    }


def _past_day(rng: random.Random, day: date, departure: int, minutes: int) -> Record:
    if rng.random() < PAST_CANCELLED:
        return {"status": "cancelled"}
    return _landed(rng, day, departure, minutes)


def _today(rng: random.Random, day: date, departure: int, minutes: int) -> Record:
    """Today's status, consistent with the clock: landed, flying, on time or delayed."""
    if departure + minutes + 60 <= NOW_MINUTES:
        return _landed(rng, day, departure, minutes)
    if departure <= NOW_MINUTES:
        leave = departure + rng.randint(-10, 0)
        arrival = max(leave + minutes + rng.randint(-15, 15), NOW_MINUTES + 5)
        return {
            "status": "flying",
            "actual_departure_time_est": _stamp(day, leave),
            "estimated_arrival_time_est": _stamp(day, arrival),
        }
    delayed = rng.random() < DELAYED_TODAY
    leave = departure + (rng.randint(60, 240) if delayed else rng.randint(-5, 10))
    return {
        "status": "delayed" if delayed else "on time",
        "estimated_departure_time_est": _stamp(day, leave),
        "estimated_arrival_time_est": _stamp(day, leave + minutes + rng.randint(-10, 10)),
    }


def _bookable(rng: random.Random, fares: dict[str, int]) -> Record:
    """A future day: seats left and today's fare in every cabin."""
    return {
        "status": "available",
        "available_seats": {cabin: 0 if rng.random() < SOLD_OUT else rng.randint(1, 20) for cabin in CABINS},
        "prices": {cabin: max(1, round(fare * rng.uniform(0.8, 1.25))) for cabin, fare in fares.items()},
    }


def _calendar(rng: random.Random, departure: int, minutes: int, fares: dict[str, int]) -> dict[str, Record]:
    today = NOW.date()
    days: dict[str, Record] = {}
    for day in _days():
        if day < today:
            days[day.isoformat()] = _past_day(rng, day, departure, minutes)
        elif day == today:
            days[day.isoformat()] = _today(rng, day, departure, minutes)
        else:
            days[day.isoformat()] = _bookable(rng, fares)
    return days


@dataclass(frozen=True)
class _Network:
    """The flights table plus what reservations need: routes, base fares, airports by region."""

    flights: Table
    by_route: dict[tuple[str, str], list[str]]
    by_origin: dict[str, list[str]]
    fares: dict[str, dict[str, int]]
    airports: list[str]
    """Every airport served, sorted."""
    region: dict[str, list[str]]
    """The airports (sorted) of each airport's region: trips stay within one."""


def _region_flights(
    rng: random.Random, codes: dict[str, str], first: int, flights: Table, fares: dict[str, dict[str, int]]
) -> None:
    """One region's ``FLIGHTS`` flights, numbered from ``first``: the network of ``AIRPORTS`` with each
    airport named by ``codes`` (the same places: the same flight times)."""
    routes = _routes(rng)
    plan = list(routes) + [rng.choice(routes) for _ in range(FLIGHTS - len(routes))]
    rng.shuffle(plan)
    for number, (origin, destination) in enumerate(plan[:FLIGHTS], start=first):
        flight_number = f"{CARRIER}{number:03d}"
        minutes = _minutes_between(origin, destination)
        departure = 60 * rng.randint(0, 23)
        fares[flight_number] = _fares(rng, minutes)
        flights[flight_number] = {
            "flight_number": flight_number,
            "origin": codes[origin],
            "destination": codes[destination],
            "scheduled_departure_time_est": _clock(departure),
            "scheduled_arrival_time_est": _clock(departure + minutes),
            "dates": _calendar(rng, departure, minutes, fares[flight_number]),
        }


def _new_flights(rng: random.Random, copies: int) -> _Network:
    """``copies`` regions of flights: the shipped network, then copies of it among new airport codes."""
    spare = spare_codes([*AIRPORTS, *AIRPORT_CITIES], len(AIRPORTS) * (copies - 1))
    flights: Table = {}
    fares: dict[str, dict[str, int]] = {}
    region: dict[str, list[str]] = {}
    for copy in range(copies):
        names = spare[(copy - 1) * len(AIRPORTS) : copy * len(AIRPORTS)] if copy else list(AIRPORTS)
        codes = dict(zip(AIRPORTS, names))
        _region_flights(rng, codes, copy * FLIGHTS + 1, flights, fares)
        region.update(dict.fromkeys(names, sorted(names)))
    by_route: dict[tuple[str, str], list[str]] = {}
    by_origin: dict[str, list[str]] = {}
    for key, flight in flights.items():
        by_route.setdefault((flight["origin"], flight["destination"]), []).append(key)
        by_origin.setdefault(flight["origin"], []).append(key)
    return _Network(flights, by_route, by_origin, fares, sorted(region), region)


# --- users ---------------------------------------------------------------------------------------


def _birth_date(rng: random.Random, first_year: int = 1950, last_year: int = 2004) -> str:
    return date(rng.randint(first_year, last_year), rng.randint(1, 12), rng.randint(1, 28)).isoformat()


def _person(rng: random.Random) -> Record:
    return {
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "dob": _birth_date(rng),
    }


def _address(rng: random.Random) -> Record:
    city, state, prefix = rng.choice(CITIES)
    unit = rng.choice(("", *UNIT_KINDS))
    return {
        "address1": f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
        "address2": f"{unit} {rng.randint(1, 999)}" if unit else "",
        "city": city,
        "country": "USA",
        "state": state,
        "zip": f"{prefix}{rng.randint(0, 99):02d}",
    }


def _payment_method(ctx: _Context, source: str) -> Record:
    payment_id = ctx.unique(lambda: f"{source}_{ctx.digits(7)}")
    if source == "credit_card":
        brand, last_four = ctx.rng.choice(CARD_BRANDS), ctx.digits(4)
        return {"source": source, "brand": brand, "last_four": last_four, "id": payment_id}
    amount = ctx.rng.choice(CERTIFICATE_VALUES) if source == "certificate" else 0
    return {"source": source, "amount": amount, "id": payment_id}


def _wallet(ctx: _Context) -> dict[str, Record]:
    """One to six methods; at least one credit card or gift card (what pays for trips)."""
    sources = [ctx.rng.choice(("credit_card", "gift_card"))]
    sources += ctx.rng.choices(
        ("credit_card", "gift_card", "certificate"), (4, 3, 3), k=ctx.rng.randint(0, 5)
    )
    ctx.rng.shuffle(sources)
    methods = [_payment_method(ctx, source) for source in sources]
    return {method["id"]: method for method in methods}


def _new_user(ctx: _Context) -> tuple[str, Record]:
    rng = ctx.rng
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    user_id = ctx.unique(lambda: f"{first.lower()}_{last.lower()}_{ctx.digits(4)}")
    email = ctx.unique(lambda: f"{first.lower()}.{last.lower()}{ctx.digits(4)}@example.com")
    saved = [_person(rng) for _ in range(rng.choice((1, 1, 1, 2, 2)))]
    membership = rng.choices(list(MEMBERSHIP_WEIGHTS), list(MEMBERSHIP_WEIGHTS.values()))[0]
    return user_id, {
        "name": {"first_name": first, "last_name": last},
        "address": _address(rng),
        "email": email,
        "dob": _birth_date(rng, 1945, 2002),
        "payment_methods": _wallet(ctx),
        "saved_passengers": saved,
        "membership": membership,
        "reservations": [],
    }


# --- itineraries ---------------------------------------------------------------------------------

Leg = list[tuple[str, str]]
"""Flights of one direction of a trip: ``(flight_number, date)`` in order."""


def _connections(net: _Network, origin: str, destination: str, day: str) -> list[Leg]:
    """One-stop connections, with the one-stop search's timing rules (next day after an overnight)."""
    found = []
    for first in net.by_origin.get(origin, []):
        stop = net.flights[first]["destination"]
        arrival = net.flights[first]["scheduled_arrival_time_est"]
        later = next_day(day) if "+1" in arrival else day
        for second in net.by_route.get((stop, destination), []):
            if later is not None and arrival <= net.flights[second]["scheduled_departure_time_est"]:
                found.append([(first, day), (second, later)])
    return found


def _leg(ctx: _Context, net: _Network, origin: str, destination: str, day: str) -> Leg | None:
    """A direct flight or a one-stop connection, direct ones preferred half of the time."""
    direct = [[(number, day)] for number in net.by_route.get((origin, destination), [])]
    stops = [c for c in _connections(net, origin, destination, day) if c[-1][1] <= LAST_DAY.isoformat()]
    options = direct if direct and (ctx.rng.random() < DIRECT_SHARE or not stops) else stops
    return ctx.rng.choice(options) if options else None


def _trip(ctx: _Context, net: _Network, created: datetime) -> tuple[str, str, str, Leg] | None:
    """``(origin, destination, flight_type, flights)`` of a trip departing after ``created``."""
    rng = ctx.rng
    origin = rng.choice(net.airports)
    destination = rng.choice([code for code in net.region[origin] if code != origin])
    first_day = max(created.date() + timedelta(days=1), FIRST_DAY)
    start = first_day + timedelta(days=rng.randint(0, (LAST_DAY - first_day).days))
    if first_day <= NOW.date() and rng.random() < LEAVING_TODAY:
        start = NOW.date()
    outbound = _leg(ctx, net, origin, destination, start.isoformat())
    if outbound is None:
        return None
    if rng.random() >= ROUND_TRIP_SHARE:
        return origin, destination, "one_way", outbound
    back = date.fromisoformat(outbound[-1][1]) + timedelta(days=rng.randint(1, 6))
    inbound = _leg(ctx, net, destination, origin, back.isoformat()) if back <= LAST_DAY else None
    return None if inbound is None else (origin, destination, "round_trip", outbound + inbound)


# --- reservations --------------------------------------------------------------------------------


def _segment(ctx: _Context, net: _Network, flight_number: str, day: str, cabin: str) -> Record:
    """A booked segment; its price is what the fare was when booked (near today's fare when known)."""
    flight = net.flights[flight_number]
    today = flight["dates"][day].get("prices", net.fares[flight_number])
    return {
        "origin": flight["origin"],
        "destination": flight["destination"],
        "flight_number": flight_number,
        "date": day,
        "price": max(1, round(today[cabin] * ctx.rng.uniform(0.85, 1.15))),
    }


def _travellers(rng: random.Random, user: Record) -> list[Record]:
    count = rng.choices(range(1, MAX_PASSENGERS + 1), PASSENGER_WEIGHTS)[0]
    people = [dict(p) for p in user["saved_passengers"]]
    if rng.random() < SELF_TRAVELS:
        people.insert(0, {**user["name"], "dob": user["dob"]})
    while len(people) < count:
        people.append(_person(rng))
    return people[:count]


def _created_at(rng: random.Random) -> datetime:
    span = int((NOW - BOOKING_START).total_seconds())
    return BOOKING_START + timedelta(seconds=rng.randint(0, span - 1))


def _paying_method(rng: random.Random, user: Record) -> str:
    usable = [m["id"] for m in user["payment_methods"].values() if m["source"] != "certificate"]
    return str(rng.choice(usable))


def _reservation_id(ctx: _Context) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return ctx.unique(lambda: "".join(ctx.rng.choice(alphabet) for _ in range(6)))


def _new_reservation(ctx: _Context, net: _Network, user_id: str, user: Record) -> Record | None:
    """A reservation as ``book_reservation`` would have made it at ``created_at``."""
    rng = ctx.rng
    created = _created_at(rng)
    trip = _trip(ctx, net, created)
    if trip is None:
        return None
    origin, destination, flight_type, legs = trip
    cabin = rng.choice(CABINS)
    segments = [_segment(ctx, net, number, day, cabin) for number, day in legs]
    passengers = _travellers(rng, user)
    count = len(passengers)
    bags = sum(rng.choice(BAGS_PER_PASSENGER) for _ in passengers)
    paid_bags = nonfree_bags(bags, count, user["membership"], cabin)
    insurance = "yes" if rng.random() < INSURED_SHARE else "no"
    total = sum(s["price"] for s in segments) * count + BAG_FEE * paid_bags
    total += INSURANCE_FEE * count if insurance == "yes" else 0
    return {
        "reservation_id": _reservation_id(ctx),
        "user_id": user_id,
        "origin": origin,
        "destination": destination,
        "flight_type": flight_type,
        "cabin": cabin,
        "flights": segments,
        "passengers": passengers,
        "payment_history": [{"payment_id": _paying_method(rng, user), "amount": total}],
        "created_at": created.isoformat(),
        "total_baggages": bags,
        "nonfree_baggages": paid_bags,
        "insurance": insurance,
    }


def _add_bags_later(rng: random.Random, reservation: Record, user: Record) -> None:
    """Bags added after booking, as ``update_reservation_baggages`` records them."""
    count = len(reservation["passengers"])
    total = reservation["total_baggages"] + rng.randint(1, 2)
    paid = nonfree_bags(total, count, user["membership"], reservation["cabin"])
    fee = BAG_FEE * max(0, paid - reservation["nonfree_baggages"])
    reservation["total_baggages"], reservation["nonfree_baggages"] = total, paid
    if fee:
        reservation["payment_history"].append({"payment_id": _paying_method(rng, user), "amount": fee})


def _cancel(reservation: Record) -> None:
    """As ``cancel_reservation`` leaves it: every payment refunded, status cancelled."""
    history = reservation["payment_history"]
    history.extend([{"payment_id": p["payment_id"], "amount": -p["amount"]} for p in history])
    reservation["status"] = "cancelled"


def _owners(rng: random.Random, user_ids: Sequence[str], count: int) -> list[str]:
    frequent = user_ids[: max(1, round(len(user_ids) * FREQUENT_FLYERS))]
    return [rng.choice(frequent if rng.random() < FREQUENT_PICK else user_ids) for _ in range(count)]


def _new_reservations(ctx: _Context, net: _Network, users: Table, count: int) -> Table:
    """``count`` reservations, in booking order (each user's list follows that order too)."""
    drafts: list[Record] = []
    for user_id in _owners(ctx.rng, list(users), count):
        reservation = None
        while reservation is None:
            reservation = _new_reservation(ctx, net, user_id, users[user_id])
        if ctx.rng.random() < BAGS_ADDED_LATER:
            _add_bags_later(ctx.rng, reservation, users[user_id])
        if ctx.rng.random() < CANCELLED_RESERVATIONS:
            _cancel(reservation)
        drafts.append(reservation)
    drafts.sort(key=lambda r: r["created_at"])
    for reservation in drafts:
        users[reservation["user_id"]]["reservations"].append(reservation["reservation_id"])
    return {r["reservation_id"]: r for r in drafts}


def _settle_gift_cards(rng: random.Random, users: Table) -> None:
    """Give every gift card its balance left today."""
    for user in users.values():
        for method in user["payment_methods"].values():
            if method["source"] == "gift_card":
                method["amount"] = rng.randint(*GIFT_CARD_BALANCE)


# --- public API ------------------------------------------------------------------------------------


def generate(seed: int = DEFAULT_SEED, scale: float = 1.0) -> dict[str, Table]:
    """Build the airline database: ``scale`` multiplies users and reservations, and above 1 the flights
    (each copy of the 300-flight network among its own airports, so routes stay as busy)."""
    ctx = _Context(random.Random(seed))
    ctx.used.update(f"HATHA{letter}" for letter in "TUVWXYZ")  # the tools' ids for new reservations
    net = _new_flights(ctx.rng, copies(scale))
    users = dict(_new_user(ctx) for _ in range(scaled(BASE_USERS, scale)))
    reservations = _new_reservations(ctx, net, users, scaled(BASE_RESERVATIONS, scale))
    _settle_gift_cards(ctx.rng, users)
    return {"flights": net.flights, "reservations": reservations, "users": users}


def main(argv: Sequence[str] | None = None) -> int:
    return generator_main(
        "Generate the airline database (flights, reservations, users).",
        generate,
        DEFAULT_SEED,
        DEFAULT_OUT,
        "users and reservations, and above 1 the flights",
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
