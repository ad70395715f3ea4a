"""The seeded travel database generator and the data files it ships."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from apigen_gym.core.database import Database
from apigen_gym.domains.travel import booking as bk
from apigen_gym.domains.travel import generator, terms

Tables = dict[str, dict[str, dict[str, Any]]]
DATA = Path(generator.__file__).parent / "db"
SIZES = {
    "users": 300,
    "airports": 43,
    "flights": 400,
    "hotels": 80,
    "cars": 60,
    "trips": 400,
    "exchange_rates": 14,
}


@pytest.fixture(scope="module")
def tables() -> Tables:
    return generator.generate()


@pytest.fixture(scope="module")
def view(tables: Tables) -> Any:
    return Database(tables).fork()


@pytest.mark.parametrize("name", list(SIZES))
def test_shipped_files_are_the_default_seed(tables: Tables, name: str) -> None:
    expected = json.dumps(tables[name], indent=1, ensure_ascii=False) + "\n"
    path = DATA / f"{name}.json"
    assert path.read_bytes() == expected.encode()
    assert path.stat().st_size < 8_000_000


def test_sizes(tables: Tables) -> None:
    assert {name: len(table) for name, table in tables.items()} == SIZES
    assert list(tables) == list(bk.TABLES)


def test_ids_and_keys(tables: Tables) -> None:
    for code, airport in tables["airports"].items():
        assert airport["code"] == code and len(code) == 3 and code.isupper()
    for number, flight in tables["flights"].items():
        assert flight["flight_number"] == number and number.startswith(flight["carrier_code"])
        assert len(flight["dates"]) == terms.DAYS and flight["origin"] != flight["destination"]
    for hotel_id, hotel in tables["hotels"].items():
        assert hotel["hotel_id"] == hotel_id and hotel_id[1:4] == hotel["airport"]
    for car_id, car in tables["cars"].items():
        assert car["car_id"] == car_id and car_id[1:4] == car["airport"]
    for user_id, user in tables["users"].items():
        assert user["user_id"] == user_id and user["travellers"]["trv_1"]["birth_date"] == user["birth_date"]
        assert all(m["id"] == k for k, m in user["payment_methods"].items())
        assert all(t["traveller_id"] == k for k, t in user["travellers"].items())
    for trip_id, trip in tables["trips"].items():
        assert trip["trip_id"] == trip_id and trip_id.startswith("TR") and trip_id[2:].isdigit()


def test_people_are_findable_uniquely(tables: Tables) -> None:
    users = tables["users"].values()
    emails = [u["email"] for u in users]
    keys = [(u["name"]["first_name"], u["name"]["last_name"], u["birth_date"]) for u in users]
    assert len(set(emails)) == len(emails) and len(set(keys)) == len(keys)
    passports = [t["passport"]["number"] for u in users for t in u["travellers"].values()]
    assert len(set(passports)) == len(passports)


def test_catalogue_coverage(tables: Tables) -> None:
    airports = tables["airports"].values()
    assert len({a["country"] for a in airports}) == 20 and len({a["currency"] for a in airports}) == 14
    assert {a["currency"] for a in airports} == set(tables["exchange_rates"])
    flights = tables["flights"].values()
    days = Counter(r["status"] for f in flights for r in f["dates"].values())
    assert set(days) == {"scheduled", "delayed", "departed", "landed", "cancelled"}
    assert len({f["carrier"] for f in flights}) == 6 and {f["stops"] for f in flights} == {0, 1}
    routes = Counter((f["origin"], f["destination"]) for f in flights)
    assert routes[("JFK", "LHR")] and sum(n >= 3 for n in routes.values()) >= 20
    assert all((b, a) in routes for a, b in routes)
    assert {f["origin"] for f in flights} == set(tables["airports"])
    for flight in flights:
        for record in flight["dates"].values():
            p = record["prices"]
            assert 0 < p["basic_economy"] < p["economy"] < p["business"]
            assert ("delay_minutes" in record) == (record["status"] == "delayed")
    assert {h["city"] for h in tables["hotels"].values()} == {a["city"] for a in airports}
    assert {h["stars"] for h in tables["hotels"].values()} == {2, 3, 4, 5}
    rooms = [r for h in tables["hotels"].values() for r in h["room_types"].values()]
    assert {r["refundable"] for r in rooms} == {True, False}
    assert {c["min_driver_age"] for c in tables["cars"].values()} >= {21, 25}
    assert len({c["car_class"] for c in tables["cars"].values()}) == 6


def test_people_coverage(tables: Tables) -> None:
    users = list(tables["users"].values())
    assert Counter(u["loyalty"]["tier"] for u in users).keys() == set(terms.TIERS)
    assert 50 <= sum(bool(u["corporate"]) for u in users) <= 100
    assert len({u["country"] for u in users}) >= 10
    today = terms.TODAY
    ages = [
        terms.age_on(date.fromisoformat(t["birth_date"]), today)
        for u in users
        for t in u["travellers"].values()
    ]
    assert min(ages) < 18 and sum(21 <= a < 25 for a in ages) >= 10 and max(ages) > 70
    expiries = [t["passport"]["expiry"] for u in users for t in u["travellers"].values()]
    assert sum("2025-04-01" <= e <= "2025-09-30" for e in expiries) >= 50
    assert sum(e < "2025-03-10" for e in expiries) >= 5
    credits = [m for u in users for m in u["payment_methods"].values() if m["type"] == "travel_credit"]
    assert (
        sum(m["expires"] < "2025-03-10" for m in credits) >= 20
        and sum(m["expires"] >= "2025-03-10" for m in credits) >= 50
    )


def test_trip_coverage(tables: Tables, view: Any) -> None:
    trips = list(tables["trips"].values())
    assert Counter(t["status"] for t in trips).keys() == {"booked", "in_progress", "completed", "cancelled"}
    assert sum(terms.within_grace(t["created_at"]) for t in trips) >= 20
    assert sum(bool(t["insurance"]) for t in trips) >= 50
    assert sum(bool(t["hotels"]) for t in trips) >= 150 and sum(bool(t["cars"]) for t in trips) >= 50
    cabins = Counter(s["cabin"] for t in trips for s in t["flights"])
    assert cabins.keys() == set(terms.CABINS)
    booked = [t for t in trips if t["status"] == "booked"]
    assert sum(any(bk.airline_cancelled(view, s) for s in t["flights"]) for t in booked) >= 5
    stays = [s for t in booked for s in bk.active(t["hotels"])]
    refunds = Counter(
        "none" if not s["refundable"] else "full" if bk.stay_refund_now(s) == s["total"] else "late"
        for s in stays
    )
    assert min(refunds["none"], refunds["full"], refunds["late"]) >= 10
    assert sum(any(p["status"] == "cancelled" for p in t["hotels"] + t["cars"]) for t in booked) >= 5


def test_trips_are_consistent_with_the_world(tables: Tables, view: Any) -> None:
    users = tables["users"]
    assert sorted(t for u in users.values() for t in u["trips"]) == sorted(tables["trips"])
    for trip in tables["trips"].values():
        user = users[trip["user_id"]]
        assert trip["trip_id"] in user["trips"] and set(trip["travellers"]) <= set(user["travellers"])
        assert {p["payment_method_id"] for p in trip["payments"]} <= set(user["payment_methods"])
        legs = [bk.segment_leg(view, s) for s in trip["flights"]]
        bk.check_sequence(view, legs)
        assert bk.departure_at(view, legs[0].flight, legs[0].day) > terms.parse_instant(trip["created_at"])
        for segment, leg in zip(trip["flights"], legs):
            assert (segment["origin"], segment["destination"]) == (
                leg.flight["origin"],
                leg.flight["destination"],
            )
            assert segment["fare"] == leg.flight["dates"][leg.day]["prices"][segment["cabin"]]
        charged = sum(p["amount"] for p in trip["payments"] if p["type"] == "charge")
        fares = sum(s["fare"] for s in trip["flights"]) * len(trip["travellers"])
        parts = sum(s["total"] for s in trip["hotels"] + trip["cars"]) + (trip["insurance"] or {}).get(
            "total", 0
        )
        assert charged == pytest.approx(fares + parts)
        for stay in trip["hotels"]:
            rate = tables["hotels"][stay["hotel_id"]]["room_types"][stay["room_type"]]["nightly_rate"]
            assert (
                stay["total"]
                == rate * stay["nights"] * stay["rooms"]
                == stay["nightly_rate"] * stay["nights"] * stay["rooms"]
            )
        statuses = {p["status"] for kind in ("flights", "hotels", "cars") for p in trip[kind]}
        assert (trip["status"] == "cancelled") == (statuses == {"cancelled"})


def test_trips_followed_the_policy_when_booked(tables: Tables, view: Any) -> None:
    for trip in tables["trips"].values():
        user = tables["users"][trip["user_id"]]
        legs = [bk.segment_leg(view, s) for s in trip["flights"]]
        if bk.international(view, legs):
            end = bk.trip_end(view, legs)
            assert all(bk.passport_problem(user["travellers"][t], end) is None for t in trip["travellers"])
        budget = bk.trip_budget(user)
        charged = sum(p["amount"] for p in trip["payments"] if p["type"] == "charge")
        assert budget is None or charged <= budget
        for rental in trip["cars"]:
            car = tables["cars"][rental["car_id"]]
            driver = user["travellers"][rental["driver_id"]]
            age = terms.age_on(
                date.fromisoformat(driver["birth_date"]), date.fromisoformat(rental["pickup_date"])
            )
            assert age >= car["min_driver_age"] and rental["driver_id"] in trip["travellers"]


def test_small_scales_keep_the_whole_catalogue(tables: Tables) -> None:
    small = generator.generate(scale=0.1)
    assert (len(small["users"]), len(small["trips"])) == (30, 40)
    for name in ("airports", "flights", "hotels", "cars", "exchange_rates"):
        assert small[name] == tables[name]


def test_scale_copies_the_catalogue_among_new_airports(tables: Tables) -> None:
    big = generator.generate(scale=2)
    sizes = {name: len(big[name]) for name in ("users", "trips", "airports", "flights", "hotels", "cars")}
    assert sizes == {"users": 600, "trips": 800, "airports": 86, "flights": 800, "hotels": 160, "cars": 120}
    for name in ("airports", "flights", "hotels", "cars"):
        assert list(big[name].items())[: len(tables[name])] == list(tables[name].items())  # shipped first
    added = {code: row for code, row in big["airports"].items() if code not in tables["airports"]}
    by_city = {row["city"]: row for row in tables["airports"].values()}
    for row in added.values():  # the same places, their own names
        city = row["city"].rsplit(" ", 1)[0]
        assert row["city"] == f"{city} 2" and row["country"] == by_city[city]["country"]
        assert row["utc_offset"] == by_city[city]["utc_offset"]
    for table in ("hotels", "cars"):
        rows = [r for r in big[table].values() if r["airport"] in added]
        assert len(rows) == len(tables[table]) and all(r["city"] == added[r["airport"]]["city"] for r in rows)
    copied = [f for f in big["flights"].values() if f["origin"] in added]
    assert len(copied) == 400 and all(
        f["destination"] in added and set(f["via"]) <= set(added) for f in copied
    )
    assert len({f["flight_number"] for f in big["flights"].values()}) == 800


def test_same_seed_same_data_other_seed_other_data() -> None:
    one = generator.generate(seed=7, scale=0.05)
    assert one == generator.generate(seed=7, scale=0.05)
    assert one != generator.generate(seed=8, scale=0.05)
    with pytest.raises(ValueError):
        generator.generate(scale=0)


def test_main_writes_every_table(tmp_path: Path) -> None:
    assert generator.main(["--seed", "3", "--scale", "0.02", "--out", str(tmp_path)]) == 0
    written = {path.name: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert written == {f"{k}.json": v for k, v in generator.generate(seed=3, scale=0.02).items()}
