"""The travel policy rules: one violating and one compliant case per rule, and robustness."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any, TypeVar

import pytest

from apigen_gym.core.database import Database, Fork, Record
from apigen_gym.core.domain import load_domain
from apigen_gym.core.policy import Step, Trace
from apigen_gym.core.session import Session, replay
from apigen_gym.core.task import Action
from apigen_gym.domains.travel import booking as bk
from apigen_gym.domains.travel import terms
from apigen_gym.domains.travel.tools import trip_started

DOMAIN = load_domain("travel")
T = TypeVar("T")


@pytest.fixture(scope="module")
def db() -> Database:
    return DOMAIN.database()


def first(items: Iterable[T], what: str) -> T:
    for item in items:
        return item
    raise AssertionError(f"the shipped data has no {what}")


def act(name: str, **arguments: Any) -> Action:
    return Action(name=name, arguments=arguments)


def login(db: Database, user_id: str) -> Action:
    return act("find_user_id_by_email", email=db.table("users")[user_id]["email"])


def trace_of(db: Database, *actions: Action) -> Trace:
    return replay(DOMAIN.tools, db, actions).trace


def broken(rule_id: str, trace: Trace) -> list[int | None]:
    """Steps at which ``rule_id`` is violated."""
    return [v.step for v in DOMAIN.policy.rule(rule_id)(trace)]


def as_user(db: Database, user_id: str, *actions: Action) -> Trace:
    return trace_of(db, login(db, user_id), *actions)


def upcoming(db: Database) -> Iterator[Record]:
    view = db.fork()
    return (t for t in db.table("trips").values() if t["status"] == "booked" and not trip_started(view, t))


def card(db: Database, user_id: str) -> str:
    methods = db.table("users")[user_id]["payment_methods"]
    return next(k for k, m in methods.items() if m["type"] == "credit_card")


def bookable(db: Database, origin: str, international: bool, cabin: str = "economy") -> Iterator[Record]:
    """Flights from ``origin`` on 2025-03-20 that can be booked for one traveller, (not) abroad."""
    view, airports = db.fork(), db.table("airports")
    for flight in db.table("flights").values():
        abroad = airports[flight["destination"]]["country"] != airports[origin]["country"]
        if flight["origin"] != origin or abroad != international:
            continue
        try:
            bk.bookable_fare(view, flight, "2025-03-20", cabin, 1)
        except Exception:
            continue
        yield flight


def booking(db: Database, user_id: str, flight: Record, traveller_ids: list[str], **extra: Any) -> Action:
    arguments = {
        "user_id": user_id,
        "traveller_ids": traveller_ids,
        "flights": [{"flight_number": flight["flight_number"], "date": "2025-03-20"}],
        "cabin": "economy",
        "payment_method_id": card(db, user_id),
    }
    return act("book_trip", **{**arguments, **extra})


def tampered(db: Database, action: Action, tamper: Callable[[Fork], None]) -> Trace:
    """A one-step trace of ``action`` whose after-state was changed by ``tamper`` (a faulty tool)."""
    fork = db.fork()
    before = fork.snapshot()
    output = DOMAIN.tools.execute(fork, action.name, action.arguments).output
    assert not output.startswith("Error"), output
    tamper(fork)
    return Trace(steps=[Step(0, action.name, action.arguments, output, before, fork.snapshot())])


# --- the rule set -----------------------------------------------------------------------------------


def test_rule_ids_and_descriptions() -> None:
    ids = [r.id for r in DOMAIN.policy.rules]
    assert len(ids) == len(set(ids)) >= 16
    assert all(i.startswith("travel.") and r.description for i, r in zip(ids, DOMAIN.policy.rules))


def test_policy_text_states_the_numbers() -> None:
    text = DOMAIN.policy.text
    for fact in (
        "2025-03-10 09:00 UTC",
        "$75",
        "$35",
        "$0.01",
        "6 months",
        "24 hours",
        "yes",
        "basic economy",
    ):
        assert fact in text


def test_rules_survive_malformed_arguments(db: Database) -> None:
    user_id = next(iter(db.table("users")))
    weird: dict[str, Any] = {
        "trip_id": ["TR1"],
        "user_id": 7,
        "traveller_ids": "trv_1",
        "flights": [3, {"date": 1}],
        "segment_id": None,
        "points": "many",
        "payment_method_id": {"x": 1},
        "pickup_date": 5,
        "driver_id": [],
        "new_flight_number": 12,
    }
    trace = trace_of(db, login(db, user_id), *(act(name, **weird) for name in DOMAIN.tools.names))
    assert {v.rule for v in DOMAIN.policy.check(trace)} == set()
    assert DOMAIN.policy.check(Trace()) == [] and DOMAIN.policy.check(Trace(messages=[])) == []


# --- library rules, bound to the travel tools ------------------------------------------------------


def test_authenticate_first(db: Database) -> None:
    trip = next(iter(db.table("trips").values()))
    read = act("get_trip_details", trip_id=trip["trip_id"])
    assert broken("travel.authenticate_first", trace_of(db, read)) == [0]
    assert broken("travel.authenticate_first", as_user(db, trip["user_id"], read)) == []
    assert (
        broken(
            "travel.authenticate_first",
            trace_of(db, act("search_flights", origin="JFK", destination="LHR", date="2025-03-20")),
        )
        == []
    )


def test_single_user(db: Database) -> None:
    first_user, second_user = list(db.table("users"))[:2]
    mine = act("get_user_details", user_id=first_user)
    theirs = act("get_user_details", user_id=second_user)
    assert broken("travel.single_user", as_user(db, first_user, mine, theirs)) == [2]
    assert broken("travel.single_user", as_user(db, first_user, mine)) == []
    other_trip = db.table("users")[second_user]["trips"][0]
    assert broken(
        "travel.single_user", as_user(db, first_user, act("get_trip_details", trip_id=other_trip))
    ) == [1]


class Chat:
    """A conversation recorded the way the env records it: messages plus the session's trace."""

    def __init__(self, db: Database):
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": "policy"}]
        self.session = Session(DOMAIN.tools, db, self.messages)

    def user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def agent(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})

    def calls(self, *actions: Action, content: str | None = None) -> None:
        index = len(self.messages)
        self.messages.append(
            {
                "role": "assistant",
                "content": content,
                "tool_calls": [
                    {
                        "id": f"c{index}_{i}",
                        "type": "function",
                        "function": {"name": a.name, "arguments": json.dumps(a.arguments)},
                    }
                    for i, a in enumerate(actions)
                ],
            }
        )
        for i, action in enumerate(actions):
            output = self.session.call(action.name, action.arguments, index).output
            self.messages.append({"role": "tool", "tool_call_id": f"c{index}_{i}", "content": output})

    def broken(self, rule_id: str) -> list[int | None]:
        return broken(rule_id, self.session.trace)


def test_confirm_before_write(db: Database) -> None:
    user_id = next(iter(db.table("users")))
    redeem = act("redeem_points", user_id=user_id, points=100)
    chat = Chat(db)
    chat.user("Turn 100 points into credit.")
    chat.calls(redeem)
    assert chat.broken("travel.confirm_before_write") == [0]
    chat = Chat(db)
    chat.user("Turn 100 points into credit.")
    chat.agent(f"I will redeem 100 points of {user_id} for a $1 travel credit. Do you confirm (yes/no)?")
    chat.user("Yes, please.")
    chat.calls(redeem)
    assert chat.broken("travel.confirm_before_write") == []


def test_one_tool_call_per_turn(db: Database) -> None:
    status = act("get_flight_status", flight_number=next(iter(db.table("flights"))), date="2025-03-20")
    chat = Chat(db)
    chat.calls(status, status)
    chat.calls(status, content="Let me check.")
    chat.calls(status)
    assert chat.broken("travel.one_tool_call_per_turn") == [0, 2]


def test_transfer_only_out_of_scope(db: Database) -> None:
    transfer = act("transfer_to_human_agents", summary="lost luggage")
    chat = Chat(db)
    chat.user("Can you book me a flight?")
    chat.calls(transfer)
    assert chat.broken("travel.transfer_only_out_of_scope") == [0]
    chat = Chat(db)
    chat.user("My bag was lost, I want to speak to a human.")
    chat.calls(transfer)
    assert chat.broken("travel.transfer_only_out_of_scope") == []


# --- travel rules -----------------------------------------------------------------------------------


def _domestic_booker(db: Database) -> Record:
    """A user without a budget whose home airport has a bookable domestic flight."""
    return first(
        (
            u
            for u in db.table("users").values()
            if not u["corporate"] and any(bookable(db, u["home_airport"], False))
        ),
        "domestic booking",
    )


def test_saved_travellers(db: Database) -> None:
    user = _domestic_booker(db)
    flight = next(bookable(db, user["home_airport"], False))
    stranger = booking(db, user["user_id"], flight, ["trv_1", "trv_99"])
    saved = booking(db, user["user_id"], flight, ["trv_1"])
    assert broken("travel.saved_travellers", as_user(db, user["user_id"], stranger)) == [1]
    assert broken("travel.saved_travellers", as_user(db, user["user_id"], saved)) == []
    trip = next(upcoming(db))
    rental = act(
        "add_car_rental",
        trip_id=trip["trip_id"],
        car_id="CJFK01",
        pickup_date="2025-03-20",
        dropoff_date="2025-03-21",
        driver_id="trv_77",
        payment_method_id="x",
    )
    assert broken("travel.saved_travellers", as_user(db, trip["user_id"], rental)) == [1]


def test_passport_validity(db: Database) -> None:
    expiring = terms.passport_deadline(date(2025, 3, 21)).isoformat()
    cases: dict[bool, tuple[Record, str, Record]] = {}
    for user in db.table("users").values():
        flights = list(bookable(db, user["home_airport"], True))
        for traveller_id, person in user["travellers"].items():
            short = person["passport"]["expiry"] < expiring
            if flights and short not in cases and not user["corporate"]:
                cases[short] = (user, traveller_id, flights[0])
    for short, (user, traveller_id, flight) in sorted(cases.items()):
        trace = as_user(db, user["user_id"], booking(db, user["user_id"], flight, [traveller_id]))
        assert broken("travel.passport_validity", trace) == ([1] if short else []), short
    assert set(cases) == {False, True}


def test_passport_validity_ignores_domestic_trips(db: Database) -> None:
    user = first(
        (
            u
            for u in db.table("users").values()
            if u["travellers"]["trv_1"]["passport"]["expiry"] < "2025-06-01"
            and any(bookable(db, u["home_airport"], False))
        ),
        "user with a short passport and a domestic flight",
    )
    flight = next(bookable(db, user["home_airport"], False))
    trace = as_user(db, user["user_id"], booking(db, user["user_id"], flight, ["trv_1"]))
    assert broken("travel.passport_validity", trace) == []


def test_within_budget(db: Database) -> None:
    user, dear = first(
        (
            (u, f)
            for u in db.table("users").values()
            if u["corporate"]
            for f in bookable(db, u["home_airport"], True, "business")
            if f["dates"]["2025-03-20"]["prices"]["business"] > u["corporate"]["trip_budget"]
        ),
        "corporate user and a business flight above the budget",
    )
    budget = user["corporate"]["trip_budget"]
    over = booking(db, user["user_id"], dear, ["trv_1"], cabin="business")
    assert broken("travel.within_budget", as_user(db, user["user_id"], over)) == [1]
    prices = [(f, f["dates"]["2025-03-20"]["prices"]) for f in bookable(db, user["home_airport"], False)]
    prices += [(f, f["dates"]["2025-03-20"]["prices"]) for f in bookable(db, user["home_airport"], True)]
    cheap = first(((f, p) for f, p in prices if p["economy"] <= budget), "cheap flight")
    fine = booking(db, user["user_id"], cheap[0], ["trv_1"])
    assert broken("travel.within_budget", as_user(db, user["user_id"], fine)) == []
    trip = first((t for t in upcoming(db) if db.table("users")[t["user_id"]]["corporate"]), "corporate trip")
    owner = db.table("users")[trip["user_id"]]
    left = owner["corporate"]["trip_budget"] - bk.net_cost(trip)
    assert left >= 0
    hotel = first(
        (
            (h, k)
            for h in db.table("hotels").values()
            for k, r in h["room_types"].items()
            if r["max_guests"] >= len(trip["travellers"])
            and all(r["availability"][d] for d in terms.days_between(date(2025, 3, 20), date(2025, 3, 27)))
        ),
        "hotel free for a week",
    )
    stay = act(
        "add_hotel_stay",
        trip_id=trip["trip_id"],
        hotel_id=hotel[0]["hotel_id"],
        room_type=hotel[1],
        check_in="2025-03-20",
        check_out="2025-03-27",
        payment_method_id=card(db, trip["user_id"]),
    )
    week = hotel[0]["room_types"][hotel[1]]["nightly_rate"] * 7
    assert broken("travel.within_budget", as_user(db, trip["user_id"], stay)) == ([1] if week > left else [])


def test_fare_rules(db: Database) -> None:
    trip, segment = first(
        ((t, s) for t in upcoming(db) for s in bk.active(t["flights"]) if s["cabin"] == "basic_economy"),
        "basic economy segment",
    )
    change = act(
        "change_flight",
        trip_id=trip["trip_id"],
        segment_id=segment["segment_id"],
        new_flight_number=segment["flight_number"],
        new_date="2025-03-29",
        payment_method_id=segment["payment_method_id"],
    )
    assert broken("travel.fare_rules", as_user(db, trip["user_id"], change)) == [1]
    trip, segment = first(
        ((t, s) for t in upcoming(db) for s in bk.active(t["flights"]) if s["cabin"] == "economy"),
        "economy segment",
    )
    same_route = act(
        "change_flight",
        trip_id=trip["trip_id"],
        segment_id=segment["segment_id"],
        new_flight_number=segment["flight_number"],
        new_date="2025-03-29",
        payment_method_id=segment["payment_method_id"],
    )
    assert broken("travel.fare_rules", as_user(db, trip["user_id"], same_route)) == []
    elsewhere = next(f for f in db.table("flights").values() if f["destination"] != segment["destination"])
    other_route = Action(
        name="change_flight",
        arguments={**same_route.arguments, "new_flight_number": elsewhere["flight_number"]},
    )
    assert broken("travel.fare_rules", as_user(db, trip["user_id"], other_route)) == [1]


def test_no_changes_after_start(db: Database) -> None:
    view = db.fork()
    trip, segment = first(
        (
            (t, s)
            for t in db.table("trips").values()
            if t["status"] == "in_progress"
            for s in bk.active(t["flights"])
            if bk.departed(view, s)
        ),
        "departed segment",
    )
    flown = act("cancel_flight", trip_id=trip["trip_id"], segment_id=segment["segment_id"])
    assert broken("travel.no_changes_after_start", as_user(db, trip["user_id"], flown)) == [1]
    whole = act("cancel_trip", trip_id=trip["trip_id"])
    assert broken("travel.no_changes_after_start", as_user(db, trip["user_id"], whole)) == [1]
    ahead = next(s for s in bk.active(trip["flights"]) if not bk.departed(view, s))
    later = act("cancel_flight", trip_id=trip["trip_id"], segment_id=ahead["segment_id"])
    assert broken("travel.no_changes_after_start", as_user(db, trip["user_id"], later)) == []
    done = first((t for t in db.table("trips").values() if t["status"] == "completed"), "completed trip")
    insure = act("add_trip_insurance", trip_id=done["trip_id"], payment_method_id=card(db, done["user_id"]))
    assert broken("travel.no_changes_after_start", as_user(db, done["user_id"], insure)) == [1]
    stay_trip = first(
        (t for t in db.table("trips").values() if t["status"] == "in_progress" and bk.active(t["hotels"])),
        "stay in progress",
    )
    stay = act("cancel_hotel_stay", trip_id=stay_trip["trip_id"], stay_id="H1")
    assert broken("travel.no_changes_after_start", as_user(db, stay_trip["user_id"], stay)) == [1]


def _refund_rows(fork: Fork, trip_id: str, item: str, amount: float) -> None:
    """Make a faulty tool: set the refund rows of ``item`` to ``amount``."""
    for row in fork.write("trips", trip_id)["payments"]:
        if row["type"] == "refund" and row["item"] == item:
            row["amount"] = amount


def test_flight_refund(db: Database) -> None:
    trip, segment = first(
        ((t, s) for t in upcoming(db) for s in bk.active(t["flights"]) if s["cabin"] == "business"),
        "business segment",
    )
    cancel = act("cancel_flight", trip_id=trip["trip_id"], segment_id=segment["segment_id"])
    assert broken("travel.flight_refund", trace_of(db, cancel)) == []
    faulty = tampered(db, cancel, lambda f: _refund_rows(f, trip["trip_id"], segment["segment_id"], 1.0))
    assert broken("travel.flight_refund", faulty) == [0]
    whole = act("cancel_trip", trip_id=trip["trip_id"])
    assert broken("travel.flight_refund", trace_of(db, whole)) == []
    assert broken(
        "travel.flight_refund", tampered(db, whole, lambda f: _refund_rows(f, trip["trip_id"], "F1", 0.5))
    ) == [0]


def test_hotel_refund(db: Database) -> None:
    trip, stay = first(
        (
            (t, s)
            for t in upcoming(db)
            for s in bk.active(t["hotels"])
            if s["refundable"] and bk.stay_refund_now(s) < s["total"]
        ),
        "stay past its free cancellation",
    )
    cancel = act("cancel_hotel_stay", trip_id=trip["trip_id"], stay_id=stay["stay_id"])
    assert broken("travel.hotel_refund", trace_of(db, cancel)) == []
    full = tampered(db, cancel, lambda f: _refund_rows(f, trip["trip_id"], stay["stay_id"], stay["total"]))
    assert broken("travel.hotel_refund", full) == [0]


def test_points_redemption(db: Database) -> None:
    user = first(
        (u for u in db.table("users").values() if u["loyalty"]["points"] >= 1000), "user with points"
    )
    user_id, balance = user["user_id"], user["loyalty"]["points"]
    for points, expected in ((1000, []), (150, [1]), (0, [1]), (balance // 100 * 100 + 100, [1])):
        trace = as_user(db, user_id, act("redeem_points", user_id=user_id, points=points))
        assert broken("travel.points_redemption", trace) == expected, points

    def overvalue(fork: Fork) -> None:
        fork.write("users", user_id)["payment_methods"]["credit_points_1"]["balance"] = 99.0

    assert broken(
        "travel.points_redemption",
        tampered(db, act("redeem_points", user_id=user_id, points=1000), overvalue),
    ) == [0]


def test_driver_age(db: Database) -> None:
    view = db.fork()
    for trip in upcoming(db):
        segments = bk.active(trip["flights"])
        if len(segments) != 2:
            continue
        city = db.table("airports")[segments[0]["destination"]]["city"]
        cars = [c for c in db.table("cars").values() if c["city"] == city and c["min_driver_age"] >= 25]
        travellers = db.table("users")[trip["user_id"]]["travellers"]
        pickup = bk.arrival_at(
            view, bk.get_flight(view, segments[0]["flight_number"]), segments[0]["date"]
        ).date()
        ages = {
            t: terms.age_on(date.fromisoformat(travellers[t]["birth_date"]), pickup)
            for t in trip["travellers"]
        }
        if cars and min(ages.values()) < 25 <= max(ages.values()) and pickup > terms.TODAY:
            break
    else:
        raise AssertionError("no trip with a young and an older traveller and a car for 25+")
    young, older = min(ages, key=ages.__getitem__), max(ages, key=ages.__getitem__)
    args = {
        "trip_id": trip["trip_id"],
        "car_id": cars[0]["car_id"],
        "pickup_date": pickup.isoformat(),
        "dropoff_date": segments[1]["date"],
        "payment_method_id": card(db, trip["user_id"]),
    }
    assert broken(
        "travel.driver_age", as_user(db, trip["user_id"], act("add_car_rental", **args, driver_id=young))
    ) == [1]
    assert (
        broken(
            "travel.driver_age", as_user(db, trip["user_id"], act("add_car_rental", **args, driver_id=older))
        )
        == []
    )


def test_valid_payment(db: Database) -> None:
    user, expired = first(
        (
            (u, m)
            for u in db.table("users").values()
            for m in u["payment_methods"].values()
            if m["type"] == "travel_credit"
            and m["expires"] < "2025-03-10"
            and not u["corporate"]
            and any(bookable(db, u["home_airport"], False))
        ),
        "user with an expired credit",
    )
    flight = next(bookable(db, user["home_airport"], False))
    with_expired = booking(db, user["user_id"], flight, ["trv_1"], payment_method_id=expired["id"])
    assert broken("travel.valid_payment", as_user(db, user["user_id"], with_expired)) == [1]
    foreign = booking(db, user["user_id"], flight, ["trv_1"], payment_method_id="card_0000000")
    assert broken("travel.valid_payment", as_user(db, user["user_id"], foreign)) == [1]
    assert (
        broken(
            "travel.valid_payment",
            as_user(db, user["user_id"], booking(db, user["user_id"], flight, ["trv_1"])),
        )
        == []
    )


def test_insurance_window(db: Database) -> None:
    old = first(
        (t for t in upcoming(db) if not t["insurance"] and not terms.within_grace(t["created_at"])),
        "old uninsured trip",
    )
    late = act("add_trip_insurance", trip_id=old["trip_id"], payment_method_id=card(db, old["user_id"]))
    assert broken("travel.insurance_window", as_user(db, old["user_id"], late)) == [1]
    fresh = first(
        (t for t in upcoming(db) if not t["insurance"] and terms.within_grace(t["created_at"])),
        "fresh uninsured trip",
    )
    in_time = act(
        "add_trip_insurance", trip_id=fresh["trip_id"], payment_method_id=card(db, fresh["user_id"])
    )
    assert broken("travel.insurance_window", as_user(db, fresh["user_id"], in_time)) == []
