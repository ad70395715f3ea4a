"""The agency's terms: the fixed clock, dates and times, fees, refunds and the value of points.

Everything here is pure (no database): tools, rules, the generator and the sampler share it, so that
an amount is computed one way only.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Literal, get_args

from apigen_gym.core.tools import ToolError

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)
"""The world's clock: every episode happens at this instant."""
NOW_TEXT = "2025-03-10T09:00:00Z"
TODAY = NOW.date()
FIRST_DAY = date(2025, 3, 4)
DAYS = 30
"""Flights, rooms and cars are on sale for the ``DAYS`` days from ``FIRST_DAY``."""
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)

Cabin = Literal["basic_economy", "economy", "business"]
CABINS: tuple[str, ...] = get_args(Cabin)
TIERS = ("member", "silver", "gold", "platinum")
FARE_FEES: dict[str, float] = {"economy": 75.0, "business": 0.0}
"""Fee per traveller for changing or cancelling a flight; basic economy can do neither for money back."""
FEE_WAIVED_TIERS = frozenset({"gold", "platinum"})
GRACE_HOURS = 24
"""A trip may be cancelled in full, and insured, within this many hours of its booking."""
INSURANCE_PER_TRAVELLER = 35.0
POINT_VALUE = 0.01
"""US dollars per loyalty point."""
POINTS_STEP = 100
"""Points are redeemed in multiples of this."""
POINTS_CREDIT_DAYS = 365
PASSPORT_MONTHS = 6
MAX_TRAVELLERS = 6
MAX_NIGHTS = 21


def money(amount: float) -> float:
    """An amount rounded to cents (and never ``-0.0``)."""
    return round(amount, 2) + 0.0


# --- dates and times ----------------------------------------------------------------------------


def parse_day(text: str, what: str = "date") -> date:
    """A ``YYYY-MM-DD`` date; ToolError otherwise."""
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ToolError(f"invalid {what} {text!r}: use YYYY-MM-DD") from None


def parse_clock(text: str, what: str = "time") -> str:
    """A ``HH:MM`` time of day, normalised to two digits each; ToolError otherwise."""
    hours, _, minutes = str(text).partition(":")
    if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
        raise ToolError(f"invalid {what} {text!r}: use HH:MM (24-hour clock)")
    return f"{int(hours):02d}:{int(minutes):02d}"


def parse_instant(text: str) -> datetime:
    """An ISO instant such as ``2025-03-09T18:00:00Z``, as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def instant_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def at_local(day: date, clock: str, utc_offset: float) -> datetime:
    """The UTC instant of local ``day`` at ``clock`` in a place ``utc_offset`` hours from UTC."""
    hours, minutes = (int(part) for part in clock.split(":"))
    local = datetime(day.year, day.month, day.day, hours, minutes, tzinfo=timezone.utc)
    return local - timedelta(hours=utc_offset)


def days_between(start: date, end: date) -> list[str]:
    """The dates from ``start`` up to, not including, ``end``: the nights of a stay, the days of a rental."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days)]


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, candidate)
        except ValueError:
            continue
    raise ValueError(day)


def age_on(birth: date, day: date) -> int:
    """Age in whole years on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def passport_deadline(trip_end: date) -> date:
    """A passport must be valid at least until this date for an international trip ending on ``trip_end``."""
    return add_months(trip_end, PASSPORT_MONTHS)


def within_grace(created_at: str) -> bool:
    """Whether a trip booked at ``created_at`` is still in its 24-hour grace period."""
    return NOW - parse_instant(created_at) <= timedelta(hours=GRACE_HOURS)


def credit_expired(expires: str) -> bool:
    """A travel credit is usable through its expiry date."""
    return parse_day(expires, "expiry") < TODAY


# --- fees and refunds ---------------------------------------------------------------------------


def fare_fee(cabin: str, tier: str) -> float | None:
    """Fee per traveller to change or cancel a flight of ``cabin`` (``None``: no change possible)."""
    if cabin not in FARE_FEES:
        return None
    return 0.0 if tier in FEE_WAIVED_TIERS else FARE_FEES[cabin]


def flight_refund_each(fare: float, cabin: str, tier: str, *, full: bool) -> float:
    """Refund per traveller for a cancelled flight; ``full`` when the airline cancelled it, the trip was
    booked less than 24 hours ago, or the trip is insured."""
    if full or cabin == "business":
        return money(fare)
    fee = fare_fee(cabin, tier)
    return 0.0 if fee is None else money(max(fare - fee, 0.0))


def stay_refund(total: float, nightly_rate: float, rooms: int, *, refundable: bool, free: bool) -> float:
    """Refund for a cancelled hotel stay: everything while free cancellation lasts, then all but one
    night (per room); nothing for a non-refundable rate."""
    if not refundable:
        return 0.0
    return money(total if free else max(total - nightly_rate * rooms, 0.0))


def points_value(points: int) -> float:
    return money(points * POINT_VALUE)
