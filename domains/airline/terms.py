"""The airline's terms of service as data: the fixed clock, cabins, fees, allowances and airports.

Tools, policy rules, the database generator and the task sampler all read these numbers from here, so
that the prose policy, the checks and the data can never disagree.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from apigen_gym.core.database import StateView

NOW = datetime(2024, 5, 15, 15, 0, 0)
"""The world's fixed clock (EST): 2024-05-15 15:00."""
NOW_TEXT = NOW.isoformat()
TODAY = NOW.date().isoformat()

CABINS = ("basic_economy", "economy", "business")
FLIGHT_TYPES = ("one_way", "round_trip")
MEMBERSHIPS = ("regular", "silver", "gold")

FREE_BAGS: dict[str, dict[str, int]] = {
    "regular": {"basic_economy": 0, "economy": 1, "business": 2},
    "silver": {"basic_economy": 1, "economy": 2, "business": 3},
    "gold": {"basic_economy": 2, "economy": 3, "business": 3},
}
"""Free checked bags per passenger, by the booking user's membership and the cabin."""
BAG_FEE = 50
INSURANCE_FEE = 30
"""Travel insurance, per passenger; bought only when booking."""
MAX_PASSENGERS = 5
PAYMENT_LIMITS = {"certificate": 1, "credit_card": 1, "gift_card": 3}
"""How many methods of each kind one booking may use."""
CHANGE_PAYMENT_SOURCES = ("credit_card", "gift_card")
"""What may pay for (or receive the refund of) a change to an existing reservation."""

CANCELLED_FLIGHT_CREDIT = 100
DELAYED_FLIGHT_CREDIT = 50
"""Compensation certificate per passenger, for a cancelled or a delayed flight."""
COVERED_REASONS = ("health", "weather")
"""Cancellation reasons travel insurance covers."""

FLOWN_STATUSES = ("landed", "flying")
"""A segment whose flight has one of these statuses on its date has been (or is being) flown."""
CANCELLATION_WINDOW = timedelta(hours=24)

AIRPORT_CITIES: dict[str, str] = {
    "SFO": "San Francisco",
    "JFK": "New York",
    "LAX": "Los Angeles",
    "ORD": "Chicago",
    "DFW": "Dallas",
    "DEN": "Denver",
    "SEA": "Seattle",
    "ATL": "Atlanta",
    "MIA": "Miami",
    "BOS": "Boston",
    "PHX": "Phoenix",
    "IAH": "Houston",
    "LAS": "Las Vegas",
    "MCO": "Orlando",
    "EWR": "Newark",
    "CLT": "Charlotte",
    "MSP": "Minneapolis",
    "DTW": "Detroit",
    "PHL": "Philadelphia",
    "LGA": "LaGuardia",
    "SAN": "San Diego",
    "AUS": "Austin",
    "PDX": "Portland",
    "SLC": "Salt Lake City",
    "BNA": "Nashville",
}
"""Airport code → the name ``list_all_airports`` gives it. The first twenty, in this order and with
these names, are τ-bench's list; an airport the table does not know is named by its code."""


def free_bags(membership: str, cabin: str) -> int:
    """Free checked bags per passenger (0 for an unknown membership or cabin)."""
    return FREE_BAGS.get(membership, {}).get(cabin, 0)


def nonfree_bags(total: int, passengers: int, membership: str, cabin: str) -> int:
    """How many of ``total`` bags are paid for, given the free allowance of every passenger."""
    return max(0, total - passengers * free_bags(membership, cabin))


def next_day(day: str) -> str | None:
    """The ISO date after ``day`` (month and year roll over); ``None`` if ``day`` is not a date."""
    try:
        return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    except (TypeError, ValueError):
        return None


def booked_within_window(created_at: Any) -> bool:
    """Whether a reservation created at ``created_at`` (ISO text) was booked in the last 24 hours."""
    try:
        created = datetime.fromisoformat(str(created_at))
    except ValueError:
        return False
    return NOW - CANCELLATION_WINDOW <= created <= NOW


def segment_status(view: StateView, segment: Any) -> str | None:
    """The status of a reservation segment's flight on the segment's date (``None`` if unknown)."""
    number = segment.get("flight_number") if isinstance(segment, dict) else None
    flight = view.get("flights", number) if isinstance(number, str) else None
    day = flight.get("dates", {}).get(segment.get("date")) if isinstance(flight, dict) else None
    return day.get("status") if isinstance(day, dict) else None
