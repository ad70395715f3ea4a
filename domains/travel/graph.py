"""The travel API dependency graph: which tool's output feeds which tool's argument.

Walks start at the identification tools (or at ``list_airports``) and end at a write, or at a read
whose answer the user wants. ``forbidden`` lists ordered pairs of writes that the policy does not
allow on the same trip within one conversation (nothing changes once a trip is cancelled; a
cancelled flight can no longer be changed), or that would undo what the user has just asked for.
"""

from __future__ import annotations

from apigen_gym.core.apigraph import ApiGraph, Edge

IDENTIFY = ("find_user_id_by_email", "find_user_id_by_name_birth_date")
PROFILE = "get_user_details"
TRIP = "get_trip_details"
AIRPORTS = "list_airports"
FLIGHTS = "search_flights"
HOTELS = "search_hotels"
CARS = "search_cars"
STATUS = "get_flight_status"
CONVERT = "convert_currency"
CALCULATE = "calculate"
TRANSFER = "transfer_to_human_agents"

BOOK = "book_trip"
ADD_HOTEL = "add_hotel_stay"
ADD_CAR = "add_car_rental"
INSURE = "add_trip_insurance"
CHANGE_FLIGHT = "change_flight"
CHANGE_CABIN = "change_cabin"
CANCEL_FLIGHT = "cancel_flight"
CANCEL_HOTEL = "cancel_hotel_stay"
CANCEL_CAR = "cancel_car_rental"
CANCEL_TRIP = "cancel_trip"
ADD_TRAVELLER = "add_traveller"
RENEW_PASSPORT = "update_traveller_passport"
REDEEM = "redeem_points"

TRIP_WRITES = (
    ADD_HOTEL,
    ADD_CAR,
    INSURE,
    CHANGE_FLIGHT,
    CHANGE_CABIN,
    CANCEL_FLIGHT,
    CANCEL_HOTEL,
    CANCEL_CAR,
    CANCEL_TRIP,
)
PROFILE_WRITES = (BOOK, ADD_TRAVELLER, RENEW_PASSPORT, REDEEM)
WRITES = (*PROFILE_WRITES, *TRIP_WRITES)


def _edges() -> list[Edge]:
    edges = [Edge(tool, PROFILE, "user_id", "user_id") for tool in IDENTIFY]
    edges += [
        Edge(PROFILE, TRIP, "trips[]", "trip_id"),
        Edge(PROFILE, FLIGHTS, "home_airport", "origin"),
        Edge(
            PROFILE, BOOK, "user_id, travellers, payment_methods", "user_id, traveller_ids, payment_method_id"
        ),
        Edge(PROFILE, TRANSFER, "user_id", "summary"),
        Edge(AIRPORTS, FLIGHTS, "code", "origin, destination"),
        Edge(AIRPORTS, HOTELS, "city", "city"),
        Edge(AIRPORTS, CARS, "city", "city"),
        Edge(FLIGHTS, BOOK, "flight_number, date", "flights"),
        Edge(FLIGHTS, CHANGE_FLIGHT, "flight_number, date", "new_flight_number, new_date"),
        Edge(FLIGHTS, HOTELS, "destination", "city"),
        Edge(FLIGHTS, CARS, "destination", "city"),
        Edge(FLIGHTS, CALCULATE, "price", "expression"),
        Edge(FLIGHTS, CONVERT, "price", "amount"),
        Edge(BOOK, ADD_HOTEL, "trip_id", "trip_id"),
        Edge(BOOK, ADD_CAR, "trip_id", "trip_id"),
        Edge(BOOK, INSURE, "trip_id", "trip_id"),
        Edge(HOTELS, ADD_HOTEL, "hotel_id, room_type", "hotel_id, room_type"),
        Edge(HOTELS, "get_hotel_details", "hotel_id", "hotel_id"),
        Edge(HOTELS, CALCULATE, "total", "expression"),
        Edge(HOTELS, CONVERT, "total", "amount"),
        Edge(CARS, ADD_CAR, "car_id", "car_id"),
        Edge(TRIP, FLIGHTS, "flights[].origin, destination", "origin, destination"),
        Edge(TRIP, HOTELS, "flights[].destination, dates", "city, check_in, check_out"),
        Edge(TRIP, CARS, "flights[].destination, dates", "city, pickup_date, dropoff_date"),
        Edge(TRIP, STATUS, "flights[].flight_number, date", "flight_number, date"),
        Edge(TRIP, "get_flight_details", "flights[].flight_number, date", "flight_number, date"),
        Edge(TRIP, "get_hotel_details", "hotels[].hotel_id", "hotel_id"),
        Edge(TRIP, CALCULATE, "payments[].amount", "expression"),
        Edge(TRIP, CONVERT, "hotels[].total", "amount"),
        Edge(TRIP, TRANSFER, "trip_id", "summary"),
        Edge(CALCULATE, CONVERT, "result", "amount"),
        Edge(ADD_TRAVELLER, BOOK, "traveller_id", "traveller_ids"),
        Edge(RENEW_PASSPORT, BOOK, "traveller_id", "traveller_ids"),
        Edge(REDEEM, BOOK, "payment_method.id", "payment_method_id"),
        Edge(REDEEM, ADD_HOTEL, "payment_method.id", "payment_method_id"),
    ]
    edges += [Edge(PROFILE, w, "user_id", "user_id") for w in (ADD_TRAVELLER, RENEW_PASSPORT, REDEEM)]
    edges += [Edge(TRIP, w, "trip_id", "trip_id") for w in TRIP_WRITES]
    return edges


def _forbidden() -> list[tuple[str, str]]:
    """(earlier write, later write) pairs the policy forbids on one trip."""
    after_cancel = [(CANCEL_TRIP, w) for w in TRIP_WRITES]
    undo = [(ADD_HOTEL, CANCEL_HOTEL), (ADD_CAR, CANCEL_CAR)]
    undo += [(w, CANCEL_TRIP) for w in (ADD_HOTEL, ADD_CAR, INSURE, CHANGE_FLIGHT, CHANGE_CABIN)]
    undo += [(w, CANCEL_FLIGHT) for w in (CHANGE_FLIGHT, CHANGE_CABIN)]
    return [*after_cancel, *undo, (CANCEL_FLIGHT, CHANGE_FLIGHT), (CANCEL_FLIGHT, CHANGE_CABIN)]


API_GRAPH = ApiGraph(_edges(), forbidden=_forbidden())
"""The travel API dependency graph."""
