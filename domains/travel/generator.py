"""Seeded generator of the travel database: airports, flights, hotels, cars, users, trips, exchange rates.

``generate(seed, scale)`` returns every table keyed by id. The catalogue (43 real airports, 400 flights
of six fictional carriers on sale for 30 days, 80 hotels, 60 car offers, 14 currencies) is fixed in
size; ``scale`` multiplies users and trips. Trips are built with the same record builders and terms
as the tools, so a generated trip looks exactly like a booked one; they follow the agency's policy
(budgets, passports, driver ages) when they were booked. Only version-stable ``random.Random``
methods are used, so a seed gives the same bytes on every Python version.
``python -m apigen_gym.domains.travel.generator`` writes the shipped files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from apigen_gym.core.database import Database, StateView
from apigen_gym.core.tools import ToolError
from apigen_gym.domains.travel import booking as bk
from apigen_gym.domains.travel import terms
from apigen_gym.kit.db_generator import Draws, copies, generator_main, scaled, spare_codes

Record = dict[str, Any]
Table = dict[str, Record]

DEFAULT_SEED = 20250310
DEFAULT_OUT = Path(__file__).parent / "db"
BASE_USERS = 300
BASE_TRIPS = 400
FLIGHTS = 400
HOTELS = 80
CAR_OFFERS = 60


class Airport(NamedTuple):
    code: str
    name: str
    city: str
    country: str
    time_zone: str
    utc_offset: float
    """UTC offset in force during the 30 days on sale (US and Canada on summer time, Europe not yet)."""
    currency: str
    lat: float
    lon: float


AIRPORT_ROWS = """
JFK|John F. Kennedy International|New York|United States|America/New_York|-4|USD|40.64|-73.78
BOS|Logan International|Boston|United States|America/New_York|-4|USD|42.36|-71.01
ORD|O'Hare International|Chicago|United States|America/Chicago|-5|USD|41.98|-87.9
ATL|Hartsfield-Jackson Atlanta International|Atlanta|United States|America/New_York|-4|USD|33.64|-84.43
MIA|Miami International|Miami|United States|America/New_York|-4|USD|25.79|-80.29
DFW|Dallas Fort Worth International|Dallas|United States|America/Chicago|-5|USD|32.9|-97.04
DEN|Denver International|Denver|United States|America/Denver|-6|USD|39.86|-104.67
SEA|Seattle-Tacoma International|Seattle|United States|America/Los_Angeles|-7|USD|47.45|-122.31
SFO|San Francisco International|San Francisco|United States|America/Los_Angeles|-7|USD|37.62|-122.38
LAX|Los Angeles International|Los Angeles|United States|America/Los_Angeles|-7|USD|33.94|-118.41
AUS|Austin-Bergstrom International|Austin|United States|America/Chicago|-5|USD|30.19|-97.67
HNL|Daniel K. Inouye International|Honolulu|United States|Pacific/Honolulu|-10|USD|21.32|-157.92
YYZ|Toronto Pearson International|Toronto|Canada|America/Toronto|-4|CAD|43.68|-79.63
YVR|Vancouver International|Vancouver|Canada|America/Vancouver|-7|CAD|49.19|-123.18
YUL|Montreal-Trudeau International|Montreal|Canada|America/Toronto|-4|CAD|45.47|-73.74
MEX|Mexico City International|Mexico City|Mexico|America/Mexico_City|-6|MXN|19.44|-99.07
CUN|Cancun International|Cancun|Mexico|America/Cancun|-5|MXN|21.04|-86.87
LHR|Heathrow|London|United Kingdom|Europe/London|0|GBP|51.47|-0.45
EDI|Edinburgh|Edinburgh|United Kingdom|Europe/London|0|GBP|55.95|-3.37
MAN|Manchester|Manchester|United Kingdom|Europe/London|0|GBP|53.36|-2.27
DUB|Dublin|Dublin|Ireland|Europe/Dublin|0|EUR|53.42|-6.27
CDG|Paris Charles de Gaulle|Paris|France|Europe/Paris|1|EUR|49.01|2.55
NCE|Nice Cote d'Azur|Nice|France|Europe/Paris|1|EUR|43.66|7.21
FRA|Frankfurt|Frankfurt|Germany|Europe/Berlin|1|EUR|50.03|8.56
MUC|Munich|Munich|Germany|Europe/Berlin|1|EUR|48.35|11.79
BER|Berlin Brandenburg|Berlin|Germany|Europe/Berlin|1|EUR|52.37|13.5
MAD|Adolfo Suarez Madrid-Barajas|Madrid|Spain|Europe/Madrid|1|EUR|40.47|-3.57
BCN|Barcelona-El Prat|Barcelona|Spain|Europe/Madrid|1|EUR|41.3|2.08
FCO|Rome Fiumicino|Rome|Italy|Europe/Rome|1|EUR|41.8|12.25
MXP|Milan Malpensa|Milan|Italy|Europe/Rome|1|EUR|45.63|8.72
LIS|Lisbon Humberto Delgado|Lisbon|Portugal|Europe/Lisbon|0|EUR|38.77|-9.13
AMS|Amsterdam Schiphol|Amsterdam|Netherlands|Europe/Amsterdam|1|EUR|52.31|4.77
ZRH|Zurich|Zurich|Switzerland|Europe/Zurich|1|CHF|47.46|8.55
HND|Tokyo Haneda|Tokyo|Japan|Asia/Tokyo|9|JPY|35.55|139.78
KIX|Kansai International|Osaka|Japan|Asia/Tokyo|9|JPY|34.43|135.24
ICN|Incheon International|Seoul|South Korea|Asia/Seoul|9|KRW|37.46|126.44
SIN|Singapore Changi|Singapore|Singapore|Asia/Singapore|8|SGD|1.36|103.99
BKK|Suvarnabhumi|Bangkok|Thailand|Asia/Bangkok|7|THB|13.69|100.75
DXB|Dubai International|Dubai|United Arab Emirates|Asia/Dubai|4|AED|25.25|55.36
DEL|Indira Gandhi International|Delhi|India|Asia/Kolkata|5.5|INR|28.56|77.1
SYD|Sydney Kingsford Smith|Sydney|Australia|Australia/Sydney|11|AUD|-33.94|151.18
MEL|Melbourne|Melbourne|Australia|Australia/Melbourne|11|AUD|-37.67|144.84
GRU|Sao Paulo Guarulhos|Sao Paulo|Brazil|America/Sao_Paulo|-3|BRL|-23.43|-46.47
"""
"""code|name|city|country|time zone|UTC offset|currency|latitude|longitude, one airport per line."""


def _airport(row: str) -> Airport:
    code, name, city, country, zone, offset, currency, lat, lon = row.split("|")
    return Airport(code, name, city, country, zone, float(offset), currency, float(lat), float(lon))


AIRPORTS = tuple(_airport(row) for row in AIRPORT_ROWS.strip().splitlines())
HUBS = (
    "JFK", "LAX", "SFO", "ORD", "ATL", "YYZ", "LHR", "CDG",
    "FRA", "AMS", "MAD", "DXB", "SIN", "HND", "SYD", "GRU",
)  # fmt: skip
REGIONS = {
    "United States": "na", "Canada": "na", "Mexico": "na", "Brazil": "sa", "Australia": "oc",
    "Japan": "as", "South Korea": "as", "Singapore": "as", "Thailand": "as", "India": "as",
    "United Arab Emirates": "as",
}  # fmt: skip
"""Region of each country outside Europe (every other country is in Europe, 'eu')."""
COST_OF_LIVING = {
    "United States": 1.0, "Canada": 0.9, "Mexico": 0.55, "United Kingdom": 1.1, "Ireland": 1.0,
    "France": 1.0, "Germany": 0.9, "Spain": 0.8, "Italy": 0.9, "Portugal": 0.75, "Netherlands": 1.0,
    "Switzerland": 1.35, "Japan": 0.9, "South Korea": 0.8, "Singapore": 1.15, "Thailand": 0.45,
    "United Arab Emirates": 1.05, "India": 0.4, "Australia": 0.95, "Brazil": 0.6,
}  # fmt: skip
CURRENCIES = (
    ("USD", "US dollar", 1.0), ("CAD", "Canadian dollar", 0.695), ("MXN", "Mexican peso", 0.0495),
    ("GBP", "Pound sterling", 1.29), ("EUR", "Euro", 1.085), ("CHF", "Swiss franc", 1.135),
    ("JPY", "Japanese yen", 0.00676), ("KRW", "South Korean won", 0.000688),
    ("SGD", "Singapore dollar", 0.748),
    ("THB", "Thai baht", 0.0296), ("AED", "UAE dirham", 0.2723), ("INR", "Indian rupee", 0.01148),
    ("AUD", "Australian dollar", 0.63), ("BRL", "Brazilian real", 0.172),
)  # fmt: skip


class Carrier(NamedTuple):
    code: str
    name: str
    regions: frozenset[str]
    price_factor: float


CARRIERS = (
    Carrier("NX", "Northstar Air", frozenset({"na", "sa"}), 1.0),
    Carrier("CQ", "Cascadia Airways", frozenset({"na", "as", "oc"}), 0.92),
    Carrier("AJ", "Atlantic Jet", frozenset({"na", "eu", "sa"}), 1.08),
    Carrier("LK", "Larkspur European", frozenset({"eu", "as"}), 0.88),
    Carrier("OR", "Orchid Pacific", frozenset({"as", "oc", "na"}), 1.05),
    Carrier("SV", "Saffron Vista", frozenset({"as", "eu", "oc", "sa", "na"}), 1.15),
)

# fmt: off
FIRST_NAMES = (
    "Aisha", "Alejandro", "Amara", "Anders", "Ava", "Benjamin", "Carmen", "Chloe", "Daniel", "Dev",
    "Elif", "Elliot", "Emma", "Fatima", "Felix", "Hannah", "Haruto", "Isabel", "Ivan", "Jack",
    "Jasmine", "Javier", "Julien", "Kai", "Kavya", "Layla", "Leon", "Liam", "Lina", "Lucas",
    "Maya", "Mei", "Mohammed", "Naomi", "Nikolai", "Noah", "Olivia", "Omar", "Pablo", "Priya",
    "Rafael", "Riya", "Ruby", "Sakura", "Santiago", "Sofia", "Theo", "Yara", "Yusuf", "Zara",
)
LAST_NAMES = (
    "Abe", "Adeyemi", "Anderson", "Bauer", "Becker", "Bennett", "Chen", "Costa", "Da Silva", "Dubois",
    "Fischer", "Flores", "Garcia", "Gomez", "Hansen", "Hughes", "Ito", "Jansen", "Khan", "Kim",
    "Kowalczyk", "Larsen", "Lee", "Lopez", "Martin", "Meyer", "Moreau", "Murphy", "Nair", "Nguyen",
    "Novak", "O'Brien", "Okoro", "Patel", "Pereira", "Rossi", "Russo", "Sato", "Schneider", "Shah",
    "Silva", "Singh", "Suzuki", "Tanaka", "Taylor", "Thompson", "Walker", "Wang", "Weber", "Yilmaz",
)
# fmt: on
USER_COUNTRIES = (
    ("United States", 50),
    ("Canada", 8),
    ("United Kingdom", 8),
    ("Germany", 5),
    ("France", 4),
    ("Japan", 4),
    ("Australia", 4),
    ("Spain", 3),
    ("India", 3),
    ("Brazil", 3),
    ("Mexico", 3),
    ("Singapore", 2),
    ("Netherlands", 2),
    ("Italy", 1),
)  # fmt: skip
TIER_WEIGHTS = (("member", 50), ("silver", 25), ("gold", 17), ("platinum", 8))
POINTS_RANGE = {
    "member": (0, 15000),
    "silver": (5000, 40000),
    "gold": (20000, 80000),
    "platinum": (40000, 150000),
}
CARD_BRANDS = ("visa", "visa", "mastercard", "mastercard", "amex")
CREDIT_SOURCES = ("refund", "promotion", "voucher")
COMPANIES = (
    "Brightline Consulting", "Northwind Logistics", "Bluepeak Analytics", "Harbor & Finch Legal",
    "Verdant Energy", "Quill Publishing", "Summit Biotech", "Orbit Robotics",
)  # fmt: skip
CABIN_WEIGHTS = (("basic_economy", 25), ("economy", 55), ("business", 20))
TRIP_STATUSES = (("booked", 0.55), ("completed", 0.18), ("in_progress", 0.08), ("cancelled", 0.19))

HOTEL_BRANDS = (
    "Harborlight", "Grand Meridian", "Cedar House", "Skyline Inn", "Riverside Suites", "The Lantern",
    "Aurora Lodge", "Parkside", "Old Town Residence", "Bluebird Hotel", "Copperleaf",
)  # fmt: skip
AIRPORT_HOTEL = "Gateway Airport Hotel"
STREETS = (
    "Harbour Road",
    "Station Street",
    "Market Square",
    "Park Avenue",
    "River Walk",
    "Hill Street",
    "Garden Lane",
    "Cathedral Street",
    "Canal Street",
    "Museum Road",
    "Bridge Street",
    "Kings Road",
)
STAR_WEIGHTS = ((2, 10), (3, 35), (4, 40), (5, 15))
STAR_FACTOR = {2: 0.8, 3: 1.0, 4: 1.45, 5: 2.3}
ROOM_TYPES = (
    ("standard", "Standard room", 2, 1.0), ("deluxe", "Deluxe room", 2, 1.3),
    ("family", "Family room", 4, 1.55), ("suite", "Suite", 3, 2.1),
)  # fmt: skip


class CarClassSpec(NamedTuple):
    name: str
    description: str
    seats: int
    low: int
    high: int
    min_ages: tuple[int, ...]


CAR_CLASSES = (
    CarClassSpec("economy", "economy hatchback or similar", 4, 28, 42, (21,)),
    CarClassSpec("compact", "compact sedan or similar", 5, 34, 50, (21,)),
    CarClassSpec("midsize", "midsize sedan or similar", 5, 42, 62, (21, 23)),
    CarClassSpec("suv", "midsize SUV or similar", 5, 58, 90, (25,)),
    CarClassSpec("premium", "premium sedan or similar", 5, 85, 140, (25,)),
    CarClassSpec("van", "seven-seat minivan or similar", 7, 70, 110, (25,)),
)
CAR_COMPANIES = ("Roadway Rentals", "Pinecone Car Hire", "Velocity Drive", "Sunrise Autos")


@dataclass
class _Context(Draws):
    def digits(self, prefix: str, count: int) -> str:
        low = 10 ** (count - 1)
        return self.unique(lambda: f"{prefix}{self.rng.randrange(low, 10 * low)}")

    def day(self, first: date, last: date) -> date:
        return first + timedelta(days=self.rng.randint(0, (last - first).days))

    def weighted(self, pairs: Sequence[tuple[Any, float]]) -> Any:
        return self.rng.choices([p[0] for p in pairs], [p[1] for p in pairs])[0]


def _days() -> list[str]:
    return [(terms.FIRST_DAY + timedelta(days=i)).isoformat() for i in range(terms.DAYS)]


def _region(country: str) -> str:
    return REGIONS.get(country, "eu")


# --- airports and money -------------------------------------------------------------------------


def _airports() -> Table:
    fields = ("code", "name", "city", "country", "time_zone", "utc_offset", "currency")
    return {a.code: {f: getattr(a, f) for f in fields} for a in AIRPORTS}


def _exchange_rates() -> Table:
    return {code: {"code": code, "name": name, "usd_per_unit": rate} for code, name, rate in CURRENCIES}


# --- flights ------------------------------------------------------------------------------------

_BY_CODE = {a.code: a for a in AIRPORTS}


def distance_km(a: str, b: str) -> float:
    """Great-circle distance between two airports."""
    p, q = _BY_CODE[a], _BY_CODE[b]
    lat1, lat2 = math.radians(p.lat), math.radians(q.lat)
    dlat, dlon = lat2 - lat1, math.radians(q.lon - p.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(h))


_TRUNK_TEXT = """
JFK-LHR JFK-CDG JFK-LAX JFK-SFO JFK-MIA BOS-LHR ORD-LHR LAX-HND SFO-HND LAX-SYD LHR-DXB DXB-SIN
SIN-SYD LHR-SIN FRA-JFK AMS-JFK MAD-GRU LAX-MEX YYZ-LHR ATL-LAX SEA-SFO DEN-ORD DFW-ORD LHR-CDG
LHR-MAD CDG-FCO FRA-BCN HND-ICN HND-SIN DEL-DXB BKK-SIN SYD-MEL DUB-LHR EDI-LHR LHR-LIS AMS-BER
FCO-MUC LHR-ZRH HNL-LAX HNL-SFO CUN-MIA HND-YVR
"""
TRUNK_ROUTES = tuple((pair[:3], pair[4:]) for pair in _TRUNK_TEXT.split())
"""Busy routes that every network of these airports would fly."""


def _pair(a: str, b: str) -> tuple[str, str]:
    return (min(a, b), max(a, b))


_TRUNK_PAIRS = frozenset(_pair(a, b) for a, b in TRUNK_ROUTES)


def _pairs(rng: random.Random) -> list[tuple[str, str]]:
    """Airport pairs with flights both ways: trunk routes, near neighbours, a hub for each airport."""
    codes = [a.code for a in AIRPORTS]
    pairs = dict.fromkeys(_pair(a, b) for a, b in TRUNK_ROUTES)
    for a in codes:
        for b in sorted((c for c in codes if c != a), key=lambda c: distance_km(a, c))[:2]:
            pairs[_pair(a, b)] = None
    for a in codes:
        hubs = sorted((h for h in HUBS if h != a), key=lambda h: distance_km(a, h))
        pairs[_pair(a, rng.choice(hubs[:3]))] = None
    return list(pairs)


def _popularity(direction: tuple[str, str]) -> float:
    if _pair(*direction) in _TRUNK_PAIRS:
        return 4.0
    hubs = sum(code in HUBS for code in direction)
    same_country = _BY_CODE[direction[0]].country == _BY_CODE[direction[1]].country
    return (1.0, 1.5, 2.5)[hubs] * (1.5 if same_country else 1.0)


def _directions(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """``count`` flight slots over both directions of every pair, popular pairs getting more."""
    directions = [d for a, b in _pairs(rng) for d in ((a, b), (b, a))][:count]
    weights = [_popularity(d) for d in directions]
    slots = list(directions)
    while len(slots) < count:
        pick = rng.choices(directions, weights)[0]
        if slots.count(pick) < 6:
            slots.append(pick)
    return slots


def _via(rng: random.Random, origin: str, destination: str) -> str | None:
    """A hub that makes a modest detour between two far-apart airports, or None."""
    direct = distance_km(origin, destination)
    options = [
        h
        for h in HUBS
        if h not in (origin, destination)
        and distance_km(origin, h) + distance_km(h, destination) <= 1.3 * direct
    ]
    options.sort(key=lambda h: distance_km(origin, h) + distance_km(h, destination))
    return rng.choice(options[:3]) if options else None


def _carrier(rng: random.Random, origin: str, destination: str) -> Carrier:
    regions = {_region(_BY_CODE[origin].country), _region(_BY_CODE[destination].country)}
    return rng.choice([c for c in CARRIERS if regions <= c.regions])


def _local_arrival(origin: str, destination: str, departure: str, minutes: int) -> tuple[str, int]:
    """Arrival time at the destination (local) and the days it is after the departure date."""
    hours, mins = (int(p) for p in departure.split(":"))
    leave = datetime(2025, 1, 1, hours, mins, tzinfo=timezone.utc) - timedelta(
        hours=_BY_CODE[origin].utc_offset
    )
    arrive = leave + timedelta(minutes=minutes, hours=_BY_CODE[destination].utc_offset)
    return arrive.strftime("%H:%M"), (arrive.date() - date(2025, 1, 1)).days


def _price_day(rng: random.Random, base: float, day: date) -> dict[str, float]:
    """Per-cabin prices on ``day``: dearer close to departure and on Fridays and Sundays."""
    ahead = (day - terms.TODAY).days
    demand = 1 + 0.35 * max(0.0, 1 - ahead / 14) if ahead >= 0 else 1.0
    weekend = 1.1 if day.weekday() in (4, 6) else 1.0
    economy = float(round(base * demand * weekend * rng.uniform(0.88, 1.15)))
    return {
        "basic_economy": float(round(economy * rng.uniform(0.68, 0.8))),
        "economy": economy,
        "business": float(round(economy * rng.uniform(2.6, 3.8))),
    }


def _seats(rng: random.Random) -> dict[str, int]:
    return {
        "basic_economy": 0 if rng.random() < 0.2 else rng.randint(1, 12),
        "economy": 0 if rng.random() < 0.07 else rng.randint(1, 48),
        "business": 0 if rng.random() < 0.15 else rng.randint(1, 8),
    }


def _status(rng: random.Random, leave: datetime, land: datetime) -> tuple[str, int | None]:
    """A day's status (and delay in minutes) given when the flight leaves and lands, in UTC."""
    if leave <= terms.NOW:
        if rng.random() < 0.03:
            return "cancelled", None
        return ("landed" if land <= terms.NOW else "departed"), None
    roll = rng.random()
    if roll < 0.04:
        return "cancelled", None
    if roll < 0.08:
        return "delayed", rng.randrange(20, 185, 5)
    return "scheduled", None


def _flight_days(rng: random.Random, flight: Record, base: float) -> dict[str, Record]:
    days: dict[str, Record] = {}
    origin, destination = _BY_CODE[flight["origin"]], _BY_CODE[flight["destination"]]
    for text in _days():
        day = date.fromisoformat(text)
        leave = terms.at_local(day, flight["departure_time"], origin.utc_offset)
        arrival_day = day + timedelta(days=flight["arrival_day_offset"])
        land = terms.at_local(arrival_day, flight["arrival_time"], destination.utc_offset)
        status, delay = _status(rng, leave, land)
        seats = _seats(rng)
        record: Record = {"status": status, "seats": seats, "prices": _price_day(rng, base, day)}
        if status == "cancelled":
            record["seats"] = dict.fromkeys(seats, 0)
        if delay is not None:
            record["delay_minutes"] = delay
        days[text] = record
    return days


def _new_flight(ctx: _Context, origin: str, destination: str, departure: str) -> Record:
    rng = ctx.rng
    carrier = _carrier(rng, origin, destination)
    direct = distance_km(origin, destination)
    via = _via(rng, origin, destination) if rng.random() < (0.35 if direct > 6500 else 0.08) else None
    km = direct if via is None else distance_km(origin, via) + distance_km(via, destination)
    minutes = round((30 + km / 13.0 + (rng.randint(60, 150) if via else 0)) / 5) * 5
    arrival, offset = _local_arrival(origin, destination, departure, minutes)
    number = ctx.unique(lambda: f"{carrier.code}{rng.randint(100, 2999)}")
    flight: Record = {
        "flight_number": number,
        "carrier": carrier.name,
        "carrier_code": carrier.code,
        "origin": origin,
        "destination": destination,
        "departure_time": departure,
        "arrival_time": arrival,
        "arrival_day_offset": offset,
        "duration_minutes": minutes,
        "stops": 0 if via is None else 1,
        "via": [] if via is None else [via],
    }
    base = (55 + 0.075 * direct) * carrier.price_factor * (0.85 if via else 1.0)
    flight["dates"] = _flight_days(rng, flight, base)
    return flight


def _departure(rng: random.Random, taken: set[str]) -> str:
    """A departure time between 06:00 and 21:55, not already used on the same route."""
    while True:
        clock = f"{rng.randint(6, 21):02d}:{rng.randrange(0, 60, 5):02d}"
        if clock not in taken:
            taken.add(clock)
            return clock


def _flights(ctx: _Context, count: int) -> Table:
    taken: dict[tuple[str, str], set[str]] = {}
    flights: Table = {}
    for origin, destination in _directions(ctx.rng, count):
        clock = _departure(ctx.rng, taken.setdefault((origin, destination), set()))
        flight = _new_flight(ctx, origin, destination, clock)
        flights[flight["flight_number"]] = flight
    return flights


# --- hotels and cars ----------------------------------------------------------------------------


def _room_types(ctx: _Context, airport: Airport, stars: int) -> Table:
    rng = ctx.rng
    chosen = [ROOM_TYPES[0], *rng.sample(ROOM_TYPES[1:], rng.randint(1, 2))]
    base = 70 * COST_OF_LIVING[airport.country] * STAR_FACTOR[stars]
    rooms: Table = {}
    for key, name, guests, factor in chosen:
        refundable = rng.random() < 0.75
        rooms[key] = {
            "name": name,
            "max_guests": guests,
            "nightly_rate": float(round(base * factor * rng.uniform(0.9, 1.15))),
            "refundable": refundable,
            "free_cancellation_hours": rng.choice((24, 48, 72, 168, 336)) if refundable else 0,
            "availability": {d: 0 if rng.random() < 0.15 else rng.randint(1, 6) for d in _days()},
        }
    return rooms


def _new_hotel(ctx: _Context, airport: Airport, index: int) -> Record:
    rng = ctx.rng
    brand = AIRPORT_HOTEL if rng.random() < 0.2 else rng.choice(HOTEL_BRANDS)
    stars = ctx.weighted(STAR_WEIGHTS)
    near = brand == AIRPORT_HOTEL
    return {
        "hotel_id": f"H{airport.code}{index:02d}",
        "name": f"{brand} {airport.city}",
        "city": airport.city,
        "country": airport.country,
        "airport": airport.code,
        "address": f"{rng.randint(1, 250)} {rng.choice(STREETS)}, {airport.city}",
        "stars": stars,
        "distance_to_airport_km": round(rng.uniform(0.5, 3.0) if near else rng.uniform(3.0, 40.0), 1),
        "check_in_time": rng.choice(("14:00", "15:00", "16:00")),
        "room_types": _room_types(ctx, airport, stars),
    }


def _hotels(ctx: _Context, count: int) -> Table:
    hotels: Table = {}
    per_city = {a.code: 0 for a in AIRPORTS}
    busiest = sorted(AIRPORTS, key=lambda a: a.code in HUBS or _region(a.country) == "na", reverse=True)
    for airport in [*AIRPORTS, *busiest][:count]:
        per_city[airport.code] += 1
        hotel = _new_hotel(ctx, airport, per_city[airport.code])
        hotels[hotel["hotel_id"]] = hotel
    return dict(sorted(hotels.items()))


def _new_car(ctx: _Context, airport: Airport, index: int) -> Record:
    rng = ctx.rng
    spec = rng.choice(CAR_CLASSES)
    return {
        "car_id": f"C{airport.code}{index:02d}",
        "company": rng.choice(CAR_COMPANIES),
        "city": airport.city,
        "airport": airport.code,
        "car_class": spec.name,
        "description": spec.description,
        "seats": spec.seats,
        "daily_rate": float(round(rng.randint(spec.low, spec.high) * COST_OF_LIVING[airport.country])),
        "min_driver_age": rng.choice(spec.min_ages),
        "availability": {d: 0 if rng.random() < 0.05 else rng.randint(1, 4) for d in _days()},
    }


def _cars(ctx: _Context, count: int) -> Table:
    cities = [a for a in AIRPORTS if a.code in HUBS or _region(a.country) == "na"]
    cities += [a for a in AIRPORTS if a not in cities]
    cars: Table = {}
    for index in range(count):
        airport = cities[index % len(cities)]
        car = _new_car(ctx, airport, index // len(cities) + 1)
        cars[car["car_id"]] = car
    return dict(sorted(cars.items()))


# --- users --------------------------------------------------------------------------------------


def _passport(ctx: _Context, country: str) -> Record:
    rng = ctx.rng
    roll = rng.random()
    if roll < 0.03:
        expiry = ctx.day(date(2024, 6, 1), date(2025, 3, 1))
    elif roll < 0.17:
        expiry = ctx.day(date(2025, 4, 1), date(2025, 9, 30))
    else:
        expiry = ctx.day(date(2025, 10, 1), date(2034, 12, 31))
    number = ctx.unique(lambda: f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randrange(10**7, 10**8)}")
    return {"number": number, "country": country, "expiry": expiry.isoformat()}


def _person(ctx: _Context, traveller_id: str, first: str, last: str, birth: date, country: str) -> Record:
    return {
        "traveller_id": traveller_id,
        "first_name": first,
        "last_name": last,
        "birth_date": birth.isoformat(),
        "passport": _passport(ctx, country),
    }


def _companions(ctx: _Context, last: str, country: str) -> list[Record]:
    rng = ctx.rng
    people = []
    for index in range(ctx.weighted(((0, 30), (1, 35), (2, 20), (3, 15)))):
        child = rng.random() < 0.35
        birth = (
            ctx.day(date(2008, 1, 1), date(2020, 12, 31))
            if child
            else ctx.day(date(1950, 1, 1), date(2003, 12, 31))
        )
        surname = last if rng.random() < 0.7 else rng.choice(LAST_NAMES)
        nationality = country if rng.random() < 0.85 else rng.choice(USER_COUNTRIES)[0]
        people.append(_person(ctx, f"trv_{index + 2}", rng.choice(FIRST_NAMES), surname, birth, nationality))
    return people


def _payment_methods(ctx: _Context) -> Table:
    rng = ctx.rng
    methods: list[Record] = []
    for _ in range(rng.choice((1, 1, 2))):
        methods.append(
            {
                "id": ctx.digits("card_", 7),
                "type": "credit_card",
                "brand": rng.choice(CARD_BRANDS),
                "last_four": f"{rng.randrange(10000):04d}",
            }
        )
    for _ in range(ctx.weighted(((0, 47), (1, 45), (2, 8)))):
        expired = rng.random() < 0.3
        expires = (
            ctx.day(date(2024, 9, 1), date(2025, 3, 9))
            if expired
            else ctx.day(terms.TODAY, date(2026, 3, 31))
        )
        methods.append(
            {
                "id": ctx.digits("credit_", 7),
                "type": "travel_credit",
                "balance": float(rng.randrange(25, 605, 5)),
                "expires": expires.isoformat(),
                "source": rng.choice(CREDIT_SOURCES),
            }
        )
    return {m["id"]: m for m in methods}


def _new_user(ctx: _Context, people: set[tuple[str, str, str]]) -> Record:
    rng = ctx.rng
    while True:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        young = rng.random() < 0.08
        birth = (
            ctx.day(date(2000, 6, 1), date(2004, 1, 31))
            if young
            else ctx.day(date(1950, 1, 1), date(1999, 12, 31))
        )
        if (first, last, birth.isoformat()) not in people:
            people.add((first, last, birth.isoformat()))
            break
    handle = f"{first}_{last}".lower().replace(" ", "").replace("'", "")
    country = ctx.weighted(USER_COUNTRIES)
    tier = ctx.weighted(TIER_WEIGHTS)
    travellers = [_person(ctx, "trv_1", first, last, birth, country), *_companions(ctx, last, country)]
    corporate = None
    if rng.random() < 0.25:
        corporate = {"company": rng.choice(COMPANIES), "trip_budget": float(rng.randrange(1000, 4001, 250))}
    return {
        "user_id": ctx.unique(lambda: f"{handle}_{rng.randint(1000, 9999)}"),
        "name": {"first_name": first, "last_name": last},
        "email": ctx.unique(lambda: f"{handle.replace('_', '.')}{rng.randint(1, 99)}@example.com"),
        "birth_date": birth.isoformat(),
        "country": country,
        "home_airport": rng.choice([a.code for a in AIRPORTS if a.country == country]),
        "loyalty": {"tier": tier, "points": rng.randint(*POINTS_RANGE[tier])},
        "corporate": corporate,
        "payment_methods": _payment_methods(ctx),
        "travellers": {t["traveller_id"]: t for t in travellers},
        "trips": [],
    }


def _users(ctx: _Context, count: int) -> Table:
    people: set[tuple[str, str, str]] = set()
    users = (_new_user(ctx, people) for _ in range(count))
    return {u["user_id"]: u for u in users}


# --- trips --------------------------------------------------------------------------------------


@dataclass
class _TripMaker:
    """Builds trips as the tools would have booked them, at some moment before now."""

    ctx: _Context
    view: StateView
    routes: dict[tuple[str, str], list[Record]]

    @property
    def rng(self) -> random.Random:
        return self.ctx.rng

    @cached_property
    def round_trips(self) -> dict[str, list[str]]:
        """Destinations flown to and back from each airport, sorted."""
        found: dict[str, set[str]] = {}
        for origin, destination in self.routes:
            if (destination, origin) in self.routes:
                found.setdefault(origin, set()).add(destination)
        return {origin: sorted(destinations) for origin, destinations in found.items()}

    def legs(self, user: Record, status: str, cabin: str) -> list[bk.Leg] | None:
        origin = user["home_airport"]
        destinations = self.round_trips.get(origin, [])
        if not destinations:
            return None
        destination = self.rng.choice(destinations)
        out_day, back_day = self._dates(status)
        legs = [self._leg((origin, destination), out_day, cabin, status)]
        if back_day is not None:
            legs.append(self._leg((destination, origin), back_day, cabin, status))
        if any(leg is None for leg in legs):
            return None
        chosen = [leg for leg in legs if leg is not None]
        try:
            bk.check_sequence(self.view, chosen)
        except ToolError:
            return None
        return chosen

    def _dates(self, status: str) -> tuple[date, date | None]:
        """Outbound and return dates (no return for one-way trips) of a trip with ``status``."""
        ctx = self.ctx
        if status == "completed":
            out = ctx.day(date(2025, 3, 4), date(2025, 3, 6))
            back = ctx.day(out + timedelta(days=1), date(2025, 3, 9))
        elif status == "in_progress":
            out = ctx.day(date(2025, 3, 5), date(2025, 3, 9))
            back = ctx.day(date(2025, 3, 11), date(2025, 3, 18))
        else:
            out = ctx.day(date(2025, 3, 11), date(2025, 3, 30))
            back = ctx.day(out + timedelta(days=2), min(out + timedelta(days=10), terms.LAST_DAY))
        one_way = self.rng.random() < 0.2 and status != "in_progress"
        return out, None if one_way else back

    def _leg(self, route: tuple[str, str], day: date, cabin: str, status: str) -> bk.Leg | None:
        flight = self.rng.choice(self.routes[route])
        record = flight["dates"][day.isoformat()]
        past = bk.departure_at(self.view, flight, day.isoformat()) <= terms.NOW
        if past and record["status"] != "landed":
            return None
        if status == "completed" and not past:
            return None
        return bk.Leg(flight, day.isoformat(), record["prices"][cabin])


def _routes(view: StateView) -> dict[tuple[str, str], list[Record]]:
    routes: dict[tuple[str, str], list[Record]] = {}
    for _, flight in view.items("flights"):
        routes.setdefault((flight["origin"], flight["destination"]), []).append(flight)
    return routes


def _city_of(record: Record) -> str:
    return str(record["city"])


def _created_at(ctx: _Context, status: str, first_departure: datetime) -> str:
    """When the trip was booked: before its first flight; some upcoming trips in the last 24 hours."""
    rng = ctx.rng
    if status == "booked" and rng.random() < 0.12:
        return terms.instant_text(terms.NOW - timedelta(minutes=rng.randint(60, 23 * 60)))
    latest = min(first_departure - timedelta(days=2), terms.NOW - timedelta(hours=30))
    earliest = datetime(2025, 1, 5, tzinfo=timezone.utc)
    minutes = int((latest - earliest).total_seconds() // 60)
    return terms.instant_text(earliest + timedelta(minutes=rng.randint(0, max(minutes, 0))))


def _pay_with(ctx: _Context, user: Record, created_at: str) -> str:
    """The method a trip was paid with: mostly a card, sometimes a travel credit valid at the time."""
    methods = list(user["payment_methods"].values())
    credits = [m["id"] for m in methods if m["type"] == "travel_credit" and m["expires"] >= created_at[:10]]
    cards = [m["id"] for m in methods if m["type"] == "credit_card"]
    return ctx.rng.choice(credits) if credits and ctx.rng.random() < 0.15 else ctx.rng.choice(cards)


def _stay(maker: _TripMaker, trip: Record, legs: list[bk.Leg], method_id: str) -> Record | None:
    rng, view = maker.rng, maker.view
    arrival = bk.arrival_at(view, legs[0].flight, legs[0].day).date()
    city = view.get("airports", legs[0].flight["destination"])["city"]
    hotels = [view.get("hotels", key) for key in view.find("hotels", _city_of, city)]
    end = date.fromisoformat(legs[1].day) if len(legs) > 1 else arrival + timedelta(days=rng.randint(2, 6))
    if not hotels or end <= arrival or end > terms.LAST_DAY + timedelta(days=1):
        return None
    hotel = rng.choice(hotels)
    room_type, room = rng.choice(sorted(hotel["room_types"].items()))
    rooms = bk.rooms_needed(len(trip["travellers"]), room["max_guests"])
    plan = bk.StayPlan(trip, hotel, room_type, terms.days_between(arrival, end), rooms)
    return bk.stay_record(view, "H1", plan, method_id)


def _rental(
    maker: _TripMaker, trip: Record, user: Record, legs: list[bk.Leg], method_id: str
) -> Record | None:
    view = maker.view
    if len(legs) < 2:
        return None
    pickup = bk.arrival_at(view, legs[0].flight, legs[0].day).date()
    city = view.get("airports", legs[0].flight["destination"])["city"]
    cars = [view.get("cars", key) for key in view.find("cars", _city_of, city)]
    days = terms.days_between(pickup, date.fromisoformat(legs[1].day))
    if not cars or not days:
        return None
    car = maker.rng.choice(cars)
    drivers = [
        user["travellers"][t]
        for t in trip["travellers"]
        if terms.age_on(date.fromisoformat(user["travellers"][t]["birth_date"]), pickup)
        >= car["min_driver_age"]
    ]
    if not drivers:
        return None
    return bk.rental_record("C1", bk.RentalPlan(trip, car, days, maker.rng.choice(drivers)), method_id)


def _passports_ok(view: StateView, user: Record, traveller_ids: list[str], legs: list[bk.Leg]) -> bool:
    if not bk.international(view, legs):
        return True
    end = bk.trip_end(view, legs)
    return all(bk.passport_problem(user["travellers"][t], end) is None for t in traveller_ids)


def _charge_all(trip: Record) -> None:
    """The payments a booking made: flights, then insurance, then each stay and rental."""
    method = trip["flights"][0]["payment_method_id"]
    fares = sum(s["fare"] for s in trip["flights"]) * len(trip["travellers"])
    items = [(" ".join(s["segment_id"] for s in trip["flights"]), fares, method)]
    if trip["insurance"]:
        items.append(("insurance", trip["insurance"]["total"], method))
    items += [(s["stay_id"], s["total"], s["payment_method_id"]) for s in trip["hotels"]]
    items += [(c["rental_id"], c["total"], c["payment_method_id"]) for c in trip["cars"]]
    trip["payments"] = [bk.payment("charge", amount, m, item) for item, amount, m in items]


def _cancel(trip: Record, user: Record, parts: list[str]) -> None:
    """Cancel ``parts`` ('flights', 'hotels', 'cars') the way the tools did, some time after the grace."""
    tier = user["loyalty"]["tier"]
    for kind in parts:
        for part in trip[kind]:
            part["status"] = bk.CANCELLED
            if kind == "flights":
                each = terms.flight_refund_each(
                    part["fare"], part["cabin"], tier, full=bool(trip["insurance"])
                )
                amount, item = each * len(trip["travellers"]), part["segment_id"]
            elif kind == "hotels":
                amount, item = (part["total"] if part["refundable"] else 0.0), part["stay_id"]
            else:
                amount, item = part["total"], part["rental_id"]
            if amount > 0:
                trip["payments"].append(bk.payment("refund", amount, part["payment_method_id"], item))
    if all(p["status"] == bk.CANCELLED for kind in ("flights", "hotels", "cars") for p in trip[kind]):
        trip["status"] = bk.CANCELLED


def _fit_budget(trip: Record, user: Record) -> bool:
    """Drop the car, then the stay, then the insurance until the trip fits the corporate budget."""
    budget = bk.trip_budget(user)
    for drop in ("cars", "hotels", "insurance"):
        _charge_all(trip)
        if budget is None or bk.net_cost(trip) <= budget:
            return True
        trip[drop] = None if drop == "insurance" else []
    _charge_all(trip)
    return budget is None or bk.net_cost(trip) <= budget


def _new_trip(maker: _TripMaker, user: Record, status: str) -> Record | None:
    ctx, rng, view = maker.ctx, maker.rng, maker.view
    companions = [t for t in user["travellers"] if t != "trv_1"]
    n = min(1 + ctx.weighted(((0, 45), (1, 35), (2, 20))), 1 + len(companions))
    traveller_ids = ["trv_1", *rng.sample(companions, n - 1)]
    cabin = ctx.weighted(CABIN_WEIGHTS)
    legs = maker.legs(user, "booked" if status == "cancelled" else status, cabin)
    if legs is None or not _passports_ok(view, user, traveller_ids, legs):
        return None
    created_at = _created_at(ctx, status, bk.departure_at(view, legs[0].flight, legs[0].day))
    method_id = _pay_with(ctx, user, created_at)
    segments = [bk.segment_record(f"F{i}", leg, cabin, method_id) for i, leg in enumerate(legs, 1)]
    trip: Record = {
        "trip_id": ctx.digits("TR", 6),
        "user_id": user["user_id"],
        "status": "booked" if status == "cancelled" else status,
        "created_at": created_at,
        "travellers": traveller_ids,
        "flights": segments,
        "hotels": [],
        "cars": [],
        "insurance": bk.insurance_record(n, method_id, created_at) if rng.random() < 0.25 else None,
        "payments": [],
    }
    stay = _stay(maker, trip, legs, method_id) if rng.random() < 0.6 else None
    trip["hotels"] = [stay] if stay else []
    rental = _rental(maker, trip, user, legs, method_id) if rng.random() < 0.3 else None
    trip["cars"] = [rental] if rental else []
    if not _fit_budget(trip, user):
        return None
    if status == "cancelled":
        _cancel(trip, user, ["flights", "hotels", "cars"])
    elif status == "booked" and rng.random() < 0.1:
        _cancel(trip, user, [kind for kind in ("cars", "hotels") if trip[kind]][:1])
    return trip


def _status_plan(rng: random.Random, count: int) -> list[str]:
    plan = [status for status, share in TRIP_STATUSES for _ in range(round(count * share))]
    plan = (plan + ["booked"] * count)[:count]
    rng.shuffle(plan)
    return plan


def _trips(ctx: _Context, view: StateView, users: Table, count: int) -> Table:
    maker = _TripMaker(ctx, view, _routes(view))
    user_ids = list(users)
    trips: list[Record] = []
    for status in _status_plan(ctx.rng, count):
        trip = None
        while trip is None:
            trip = _new_trip(maker, users[ctx.rng.choice(user_ids)], status)
        trips.append(trip)
    trips.sort(key=lambda t: (t["created_at"], t["trip_id"]))
    for trip in trips:
        users[trip["user_id"]]["trips"].append(trip["trip_id"])
    return {t["trip_id"]: t for t in trips}


# --- public API ---------------------------------------------------------------------------------


def _catalogue_copy(ctx: _Context, copy: int, code: list[str]) -> tuple[Table, Table, Table, Table]:
    """Copy ``copy`` (1, 2, ...) of the catalogue: airports at the same places under new codes (and
    cities named "<city> <copy + 1>"), with their own flights, hotels and cars."""
    own = _Context(ctx.rng)  # flight numbers are drawn afresh, then made unique by the copy number
    flights, hotels, cars = _flights(own, FLIGHTS), _hotels(own, HOTELS), _cars(own, CAR_OFFERS)
    codes = dict(zip(_BY_CODE, code))  # each shipped airport's code in this copy
    city = {a.city: f"{a.city} {copy + 1}" for a in AIRPORTS}
    airports = {
        codes[a]: {**row, "code": codes[a], "name": f"{row['name']} {copy + 1}", "city": city[row["city"]]}
        for a, row in _airports().items()
    }
    numbered: Table = {}
    for flight in flights.values():
        carrier = flight["carrier_code"]
        number = f"{carrier}{copy * 3000 + int(flight['flight_number'][len(carrier) :])}"
        flight.update(flight_number=number, origin=codes[flight["origin"]])
        flight.update(destination=codes[flight["destination"]], via=[codes[v] for v in flight["via"]])
        numbered[number] = flight
    renamed: list[Table] = []
    for table, prefix, key in ((hotels, "H", "hotel_id"), (cars, "C", "car_id")):
        rows: Table = {}
        for row in table.values():
            ident = f"{prefix}{codes[row['airport']]}{row[key][4:]}"  # after the prefix and the code
            for field in ("name", "address"):
                if field in row:
                    row[field] = row[field].replace(row["city"], city[row["city"]])
            row.update({key: ident, "airport": codes[row["airport"]], "city": city[row["city"]]})
            rows[ident] = row
        renamed.append(rows)
    return airports, numbered, renamed[0], renamed[1]


def _catalogue(ctx: _Context, copies: int) -> dict[str, Table]:
    """The shipped catalogue, then ``copies - 1`` copies of it (see :func:`_catalogue_copy`)."""
    catalogue = {
        "airports": _airports(),
        "flights": _flights(ctx, FLIGHTS),
        "hotels": _hotels(ctx, HOTELS),
        "cars": _cars(ctx, CAR_OFFERS),
        "exchange_rates": _exchange_rates(),
    }
    spare = spare_codes(_BY_CODE, len(AIRPORTS) * (copies - 1))
    for copy in range(1, copies):
        tables = _catalogue_copy(ctx, copy, spare[(copy - 1) * len(AIRPORTS) : copy * len(AIRPORTS)])
        for name, table in zip(("airports", "flights", "hotels", "cars"), tables):
            catalogue[name].update(table)
    return catalogue


def generate(seed: int = DEFAULT_SEED, scale: float = 1.0) -> dict[str, Table]:
    """Build the travel database; ``scale`` multiplies users and trips, and above 1 the catalogue (as
    copies of it among new airports: every route, city and airport stays as busy)."""
    ctx = _Context(random.Random(seed))
    catalogue = _catalogue(ctx, copies(scale))
    view = Database(catalogue).fork()
    users = _users(ctx, scaled(BASE_USERS, scale))
    trips = _trips(ctx, view, users, scaled(BASE_TRIPS, scale))
    tables = {"users": users, "trips": trips, **catalogue}
    return {name: tables[name] for name in bk.TABLES}


def main(argv: Sequence[str] | None = None) -> int:
    return generator_main(
        "Generate the travel database.",
        generate,
        DEFAULT_SEED,
        DEFAULT_OUT,
        "users and trips, and above 1 the catalogue",
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
