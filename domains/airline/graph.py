"""The airline API dependency graph: which tool's output feeds which tool's argument.

There is no identification look-up in this world: the user tells their user id, so walks start at
the profile (``get_user_details``) or at the airport list, and end at a write, or at a read whose
answer the user wants. ``forbidden`` lists ordered pairs of writes the policy does not allow on the
same reservation within one conversation (nothing can follow its cancellation).
"""

from __future__ import annotations

from apigen_gym.core.apigraph import ApiGraph, Edge

PROFILE = "get_user_details"
RESERVATION = "get_reservation_details"
AIRPORTS = "list_all_airports"
SEARCH_DIRECT = "search_direct_flight"
SEARCH_ONESTOP = "search_onestop_flight"
SEARCHES = (SEARCH_DIRECT, SEARCH_ONESTOP)
BOOK = "book_reservation"
CANCEL = "cancel_reservation"
CHANGE_FLIGHTS = "update_reservation_flights"
CHANGE_BAGS = "update_reservation_baggages"
CHANGE_PASSENGERS = "update_reservation_passengers"
SEND_CERTIFICATE = "send_certificate"
TRANSFER = "transfer_to_human_agents"

RESERVATION_WRITES = (CANCEL, CHANGE_FLIGHTS, CHANGE_BAGS, CHANGE_PASSENGERS)
WRITES = (BOOK, *RESERVATION_WRITES, SEND_CERTIFICATE)
PAID_CHANGES = (CHANGE_FLIGHTS, CHANGE_BAGS)
"""Changes with a ``payment_id`` argument, taken from the user's profile."""


def _edges() -> list[Edge]:
    edges = [
        Edge(PROFILE, RESERVATION, "reservations[]", "reservation_id"),
        Edge(
            PROFILE,
            BOOK,
            "user_id, saved_passengers, payment_methods",
            "user_id, passengers, payment_methods",
        ),
        Edge(PROFILE, SEND_CERTIFICATE, "user_id, membership", "user_id"),
        Edge(PROFILE, "calculate", "payment_methods[].amount", "expression"),
        Edge(RESERVATION, "calculate", "flights[].price, payment_history[].amount", "expression"),
        Edge(RESERVATION, SEND_CERTIFICATE, "passengers (count)", "amount"),
        Edge(RESERVATION, TRANSFER, "flights (already flown)", "summary"),
        Edge("calculate", BOOK, "total", "payment_methods[].amount"),
    ]
    edges += [Edge(AIRPORTS, search, "{code: city}", "origin, destination") for search in SEARCHES]
    edges += [
        Edge(RESERVATION, search, "flights[].origin/destination/date", "origin, destination, date")
        for search in SEARCHES
    ]
    edges += [Edge(search, BOOK, "flight_number, date", "flights") for search in SEARCHES]
    edges += [Edge(search, CHANGE_FLIGHTS, "flight_number, date, prices", "flights") for search in SEARCHES]
    edges += [Edge(search, "calculate", "prices", "expression") for search in SEARCHES]
    edges += [Edge(RESERVATION, write, "reservation_id", "reservation_id") for write in RESERVATION_WRITES]
    edges += [Edge(PROFILE, write, "payment_methods", "payment_id") for write in PAID_CHANGES]
    return edges


def _forbidden() -> list[tuple[str, str]]:
    """(earlier write, later write) pairs the policy forbids on one reservation."""
    return [(CANCEL, write) for write in RESERVATION_WRITES]


API_GRAPH = ApiGraph(_edges(), forbidden=_forbidden())
"""The airline API dependency graph."""
