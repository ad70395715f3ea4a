"""The seeded airline database generator and the data files it ships."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from apigen_gym.core.database import Database
from apigen_gym.domains.airline import generator
from apigen_gym.domains.airline.terms import (
    AIRPORT_CITIES,
    CABINS,
    FLIGHT_TYPES,
    MEMBERSHIPS,
    TODAY,
    nonfree_bags,
    segment_status,
)

Tables = dict[str, dict[str, dict[str, Any]]]
DATA = Path(generator.__file__).parent / "db"
FLIGHT_KEYS = [
    "flight_number",
    "origin",
    "destination",
    "scheduled_departure_time_est",
    "scheduled_arrival_time_est",
    "dates",
]
DAY_KEYS = {
    "landed": ["status", "actual_departure_time_est", "actual_arrival_time_est"],
    "cancelled": ["status"],
    "flying": ["status", "actual_departure_time_est", "estimated_arrival_time_est"],
    "on time": ["status", "estimated_departure_time_est", "estimated_arrival_time_est"],
    "delayed": ["status", "estimated_departure_time_est", "estimated_arrival_time_est"],
    "available": ["status", "available_seats", "prices"],
}
RESERVATION_KEYS = [
    "reservation_id",
    "user_id",
    "origin",
    "destination",
    "flight_type",
    "cabin",
    "flights",
    "passengers",
    "payment_history",
    "created_at",
    "total_baggages",
    "nonfree_baggages",
    "insurance",
]
USER_KEYS = [
    "name",
    "address",
    "email",
    "dob",
    "payment_methods",
    "saved_passengers",
    "membership",
    "reservations",
]
METHOD_KEYS = {
    "credit_card": ["source", "brand", "last_four", "id"],
    "gift_card": ["source", "amount", "id"],
    "certificate": ["source", "amount", "id"],
}


@pytest.fixture(scope="module")
def tables() -> Tables:
    return generator.generate()


@pytest.fixture(scope="module")
def view(tables: Tables) -> Any:
    return Database(tables).fork()


@pytest.mark.parametrize("name", ["flights", "reservations", "users"])
def test_shipped_files_are_the_default_seed(tables: Tables, name: str) -> None:
    expected = json.dumps(tables[name], indent=1, ensure_ascii=False) + "\n"
    shipped = (DATA / f"{name}.json").read_bytes()
    assert shipped == expected.encode()
    assert len(shipped) < 4_000_000


def test_write_and_main(tmp_path: Path) -> None:
    assert generator.main(["--scale", "0.02", "--seed", "3", "--out", str(tmp_path)]) == 0
    written = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in tmp_path.glob("*.json")}
    assert written == generator.generate(3, 0.02)
    assert generator.generate(4, 0.02) != written
    with pytest.raises(ValueError):
        generator.generate(scale=0)


def test_sizes(tables: Tables) -> None:
    assert list(tables) == ["flights", "reservations", "users"]
    assert [len(t) for t in tables.values()] == [300, 2000, 500]
    small = generator.generate(scale=0.1)
    assert [len(t) for t in small.values()] == [300, 200, 50]


def test_scale_copies_the_network_among_new_airports(tables: Tables) -> None:
    big = generator.generate(scale=2)
    assert [len(t) for t in big.values()] == [600, 4000, 1000]
    flights = list(big["flights"].values())
    assert flights[:300] == list(tables["flights"].values())  # the shipped network first
    shipped = {f["origin"] for f in flights[:300]}
    added = {f["origin"] for f in flights[300:]} | {f["destination"] for f in flights[300:]}
    assert len(added) == len(shipped) and not added & (shipped | set(AIRPORT_CITIES))
    assert all(len(code) == 3 and code.isupper() for code in added)
    for reservation in big["reservations"].values():  # a trip stays within one copy of the network
        stops = {reservation["origin"], reservation["destination"]}
        stops |= {big["flights"][s["flight_number"]]["origin"] for s in reservation["flights"]}
        assert stops <= shipped or stops <= added


def test_flight_shapes(tables: Tables) -> None:
    days = [f"2024-05-{d:02d}" for d in range(1, 31)]
    for number, flight in tables["flights"].items():
        assert number == flight["flight_number"] and number[:3] == "APG" and number[3:].isdigit()
        assert list(flight) == FLIGHT_KEYS and list(flight["dates"]) == days
        assert flight["origin"] != flight["destination"]
        assert {flight["origin"], flight["destination"]} <= set(AIRPORT_CITIES)
        for day, status in flight["dates"].items():
            assert list(status) == DAY_KEYS[status["status"]]
            if day < TODAY:
                assert status["status"] in ("landed", "cancelled")
            elif day > TODAY:
                assert status["status"] == "available"
                assert list(status["prices"]) == list(status["available_seats"]) == list(CABINS)
                assert (
                    status["prices"]["basic_economy"]
                    < status["prices"]["economy"]
                    < status["prices"]["business"]
                )


def test_every_status_appears_today_and_overall(tables: Tables) -> None:
    statuses = Counter(f["dates"][TODAY]["status"] for f in tables["flights"].values())
    assert set(statuses) == {"landed", "flying", "on time", "delayed"}
    overall = Counter(s["status"] for f in tables["flights"].values() for s in f["dates"].values())
    assert set(overall) == set(DAY_KEYS)
    arrivals = [f["scheduled_arrival_time_est"] for f in tables["flights"].values()]
    assert 10 < sum(a.endswith("+1") for a in arrivals) < 100


def test_reservation_shapes_and_arithmetic(tables: Tables, view: Any) -> None:
    users = tables["users"]
    for key, reservation in tables["reservations"].items():
        cancelled = reservation.get("status") == "cancelled"
        assert list(reservation) == RESERVATION_KEYS + (["status"] if cancelled else [])
        assert key == reservation["reservation_id"] and len(key) == 6 and not key.startswith("HATHA")
        user = users[reservation["user_id"]]
        assert key in user["reservations"]
        segments = reservation["flights"]
        assert all(list(s) == ["origin", "destination", "flight_number", "date", "price"] for s in segments)
        assert all(a["destination"] == b["origin"] for a, b in zip(segments, segments[1:]))
        assert segments[0]["origin"] == reservation["origin"]
        end = (
            reservation["origin"]
            if reservation["flight_type"] == "round_trip"
            else reservation["destination"]
        )
        assert segments[-1]["destination"] == end
        assert min(s["date"] for s in segments) > reservation["created_at"][:10]
        count = len(reservation["passengers"])
        assert 1 <= count <= 5
        paid = nonfree_bags(reservation["total_baggages"], count, user["membership"], reservation["cabin"])
        assert reservation["nonfree_baggages"] == paid
        history = reservation["payment_history"]
        fare = sum(s["price"] for s in segments) * count + 30 * count * (reservation["insurance"] == "yes")
        assert sum(p["amount"] for p in history) == (0 if cancelled else fare + 50 * paid)
        assert all(p["payment_id"] in user["payment_methods"] for p in history)
        assert all(segment_status(view, s) is not None for s in segments)


def test_every_kind_of_reservation_is_present(tables: Tables, view: Any) -> None:
    reservations = list(tables["reservations"].values())
    assert {r["cabin"] for r in reservations} == set(CABINS)
    assert {r["flight_type"] for r in reservations} == set(FLIGHT_TYPES)
    assert {r["insurance"] for r in reservations} == {"yes", "no"}
    assert 50 < sum(r.get("status") == "cancelled" for r in reservations) < 300
    statuses = Counter(segment_status(view, s) for r in reservations for s in r["flights"])
    assert set(statuses) == set(DAY_KEYS), statuses
    assert 20 < sum(r["created_at"] >= "2024-05-14T15:00:00" for r in reservations) < 300
    assert sum(len(r["payment_history"]) == 2 and r.get("status") is None for r in reservations) > 20
    assert {len(r["passengers"]) for r in reservations} == {1, 2, 3, 4, 5}
    assert {len(r["flights"]) for r in reservations} == {1, 2, 3, 4}


def test_user_shapes(tables: Tables) -> None:
    users = tables["users"]
    assert Counter(u["membership"] for u in users.values()).keys() == set(MEMBERSHIPS)
    sources: Counter[str] = Counter()
    for user_id, user in users.items():
        first, last = user["name"]["first_name"], user["name"]["last_name"]
        assert user_id.startswith(f"{first.lower()}_{last.lower()}_") and user_id[-4:].isdigit()
        assert list(user) == USER_KEYS
        assert list(user["address"]) == ["address1", "address2", "city", "country", "state", "zip"]
        assert user["email"].endswith("@example.com") and user["saved_passengers"]
        for method_id, method in user["payment_methods"].items():
            assert method_id == method["id"] and method_id.startswith(method["source"] + "_")
            assert list(method) == METHOD_KEYS[method["source"]]
            sources[method["source"]] += 1
        assert any(m["source"] != "certificate" for m in user["payment_methods"].values())
        created = [tables["reservations"][r]["created_at"] for r in user["reservations"]]
        assert created == sorted(created)
    assert set(sources) == set(METHOD_KEYS)
