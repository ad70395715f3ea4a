"""The airline policy rules: a violating and a compliant case per rule, dialogue rules through the env,
and τ-bench's gold traces (which break a few rules in known places)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apigen_gym.core.database import Database, StateView
from apigen_gym.core.domain import load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.policy import Trace
from apigen_gym.core.session import replay
from apigen_gym.core.task import Action, Goal, Request, Task
from apigen_gym.domains.airline.rules import eligible_without_insurance, flown, segment_statuses
from apigen_gym.domains.airline.terms import booked_within_window, nonfree_bags

DOMAIN = load_domain("airline")
Record = dict[str, Any]


@pytest.fixture(scope="module")
def db() -> Database:
    return DOMAIN.database()


@pytest.fixture(scope="module")
def view(db: Database) -> StateView:
    return db.fork()


# --- finding records -------------------------------------------------------------------------------


def find(db: Database, test: Callable[[Record], bool]) -> Record:
    """The first active reservation passing ``test``."""
    for reservation in db.table("reservations").values():
        if reservation.get("status") != "cancelled" and test(reservation):
            return reservation
    raise AssertionError("no such reservation")


def upcoming(view: StateView) -> Callable[[Record], bool]:
    return lambda r: all(s == "available" for s in segment_statuses(view, r))


def user(db: Database, reservation: Record) -> Record:
    return db.table("users")[reservation["user_id"]]


def methods(db: Database, reservation: Record, source: str) -> list[Record]:
    return [m for m in user(db, reservation)["payment_methods"].values() if m["source"] == source]


def legs(reservation: Record) -> list[dict[str, str]]:
    return [{"flight_number": s["flight_number"], "date": s["date"]} for s in reservation["flights"]]


def act(name: str, **arguments: Any) -> Action:
    return Action(name=name, arguments=arguments)


def trace_of(db: Database, *actions: Action) -> Trace:
    return replay(DOMAIN.tools, db, actions).trace


def broken(rule_id: str, trace: Trace) -> list[int | None]:
    """Steps at which ``rule_id`` is violated."""
    return [v.step for v in DOMAIN.policy.rule(rule_id)(trace)]


def other_flight(db: Database, origin: str, destination: str, not_number: str) -> str:
    """Another flight number of the route (or of any route from ``origin`` when ``destination`` is '')."""
    for number, flight in db.table("flights").items():
        if flight["origin"] == origin and number != not_number and destination in ("", flight["destination"]):
            return number
    raise AssertionError("no other flight")


def booking(db: Database, reservation: Record, **change: Any) -> Action:
    """A booking repeating ``reservation``'s trip (for its owner), with ``change`` applied."""
    owner = user(db, reservation)
    count = len(reservation["passengers"])
    arguments = {
        "user_id": reservation["user_id"],
        "origin": reservation["origin"],
        "destination": reservation["destination"],
        "flight_type": reservation["flight_type"],
        "cabin": reservation["cabin"],
        "flights": legs(reservation),
        "passengers": reservation["passengers"],
        "payment_methods": [{"payment_id": reservation["payment_history"][0]["payment_id"], "amount": 1}],
        "total_baggages": count,
        "nonfree_baggages": nonfree_bags(count, count, owner["membership"], reservation["cabin"]),
        "insurance": "no",
    }
    return act("book_reservation", **{**arguments, **change})


def change_flights(
    reservation: Record, flights: list[dict[str, str]], payment_id: str, cabin: str = ""
) -> Action:
    return act(
        "update_reservation_flights",
        reservation_id=reservation["reservation_id"],
        cabin=cabin or reservation["cabin"],
        flights=flights,
        payment_id=payment_id,
    )


def card(db: Database, reservation: Record) -> str:
    return str(methods(db, reservation, "credit_card")[0]["id"])


def has_card(db: Database) -> Callable[[Record], bool]:
    return lambda r: bool(methods(db, r, "credit_card"))


def both(*tests: Callable[[Record], bool]) -> Callable[[Record], bool]:
    return lambda r: all(t(r) for t in tests)


# --- the rule set ----------------------------------------------------------------------------------


def test_every_rule_has_a_unique_id_and_a_description() -> None:
    ids = [r.id for r in DOMAIN.policy.rules]
    assert len(ids) == len(set(ids)) >= 17
    assert all(i.startswith("airline.") for i in ids)
    assert all(r.description.strip() for r in DOMAIN.policy.rules)


def test_policy_text_states_the_facts() -> None:
    text = DOMAIN.policy.text
    for fact in ("2024-05-15 15:00 EST", "5 passengers", "$50", "$30 per passenger", "24 hours", "$100 ×"):
        assert fact in text
    assert "| gold | 2 | 3 | 3 |" in text and "| regular | 0 | 1 | 2 |" in text


def test_rules_survive_malformed_arguments(db: Database) -> None:
    weird: dict[str, Any] = {"reservation_id": ["X"], "user_id": 7, "flights": "abc", "passengers": None}
    junk = {"payment_methods": [3, {"payment_id": 4}], "payment_id": {"x": 1}, "cabin": 2, "amount": "1"}
    trace = trace_of(db, *[act(name, **weird, **junk) for name in DOMAIN.tools.names])
    assert all(not step.ok for step in trace.steps if step.name != "list_all_airports")
    assert DOMAIN.policy.check(trace) == []
    assert DOMAIN.policy.check(Trace()) == [] and DOMAIN.policy.check(Trace(messages=[])) == []


# --- booking --------------------------------------------------------------------------------------


def test_max_passengers(db: Database, view: StateView) -> None:
    reservation = find(db, both(upcoming(view), lambda r: len(r["passengers"]) == 1))
    person = reservation["passengers"][0]
    assert broken(
        "airline.max_passengers", trace_of(db, booking(db, reservation, passengers=[person] * 6))
    ) == [0]
    assert (
        broken("airline.max_passengers", trace_of(db, booking(db, reservation, passengers=[person] * 5)))
        == []
    )


def test_payment_method_limits(db: Database, view: StateView) -> None:
    reservation = find(db, lambda r: len(methods(db, r, "certificate")) >= 2)
    two = [{"payment_id": m["id"], "amount": 1} for m in methods(db, reservation, "certificate")[:2]]
    rule = "airline.payment_method_limits"
    assert broken(rule, trace_of(db, booking(db, reservation, payment_methods=two))) == [0]
    assert broken(rule, trace_of(db, booking(db, reservation, payment_methods=two[:1]))) == []
    cards = [{"payment_id": f"gift_card_{n}", "amount": 1} for n in range(4)]
    assert broken(rule, trace_of(db, booking(db, reservation, payment_methods=cards))) == [0]
    assert broken(rule, trace_of(db, booking(db, reservation, payment_methods=cards[:3]))) == []


def test_payment_in_profile(db: Database) -> None:
    mine = find(db, has_card(db))
    theirs = find(db, lambda r: r["user_id"] != mine["user_id"] and bool(methods(db, r, "credit_card")))
    foreign = card(db, theirs)
    rule = "airline.payment_in_profile"
    pay = [{"payment_id": foreign, "amount": 100}]
    assert broken(rule, trace_of(db, booking(db, mine, payment_methods=pay))) == [0]
    bags = {"reservation_id": mine["reservation_id"], "total_baggages": 9, "nonfree_baggages": 9}
    assert broken(rule, trace_of(db, act("update_reservation_baggages", **bags, payment_id=foreign))) == [0]
    assert (
        broken(rule, trace_of(db, act("update_reservation_baggages", **bags, payment_id=card(db, mine))))
        == []
    )
    assert broken(rule, trace_of(db, booking(db, mine))) == []


def test_baggage_allowance(db: Database, view: StateView) -> None:
    reservation = find(db, both(upcoming(view), lambda r: user(db, r)["membership"] == "silver"))
    count, cabin = len(reservation["passengers"]), reservation["cabin"]
    total = 4 * count
    due = nonfree_bags(total, count, "silver", cabin)
    rule = "airline.baggage_allowance"
    right = booking(db, reservation, total_baggages=total, nonfree_baggages=due)
    wrong = booking(db, reservation, total_baggages=total, nonfree_baggages=due + 1)
    assert broken(rule, trace_of(db, right)) == [] and broken(rule, trace_of(db, wrong)) == [0]
    bags = {"reservation_id": reservation["reservation_id"], "total_baggages": total, "payment_id": "x"}
    assert broken(rule, trace_of(db, act("update_reservation_baggages", **bags, nonfree_baggages=due))) == []
    assert broken(rule, trace_of(db, act("update_reservation_baggages", **bags, nonfree_baggages=total))) == [
        0
    ]


def test_insurance_only_at_booking(db: Database, view: StateView) -> None:
    rule = "airline.insurance_only_at_booking"
    held = find(db, both(upcoming(view), lambda r: r["insurance"] == "no"))
    assert broken(rule, trace_of(db, booking(db, held, insurance="yes"))) == [0]
    assert broken(rule, trace_of(db, booking(db, held))) == []
    other = [
        {
            **legs(held)[0],
            "flight_number": other_flight(db, held["origin"], "", legs(held)[0]["flight_number"]),
        }
    ]
    assert broken(rule, trace_of(db, booking(db, held, insurance="yes", flights=other))) == []
    fresh = find(db, lambda r: r["insurance"] == "no" and booked_within_window(r["created_at"]))
    cancel = act("cancel_reservation", reservation_id=fresh["reservation_id"])
    assert broken(rule, trace_of(db, cancel, booking(db, fresh, insurance="yes"))) == [1]
    assert broken(rule, trace_of(db, cancel, booking(db, fresh, cabin="business"))) == []


# --- changing a reservation ----------------------------------------------------------------------


def seats(view: StateView, cabin: str) -> Callable[[Record], bool]:
    """Whether every flight of the reservation has a seat in ``cabin`` for every passenger."""

    def enough(reservation: Record) -> bool:
        for segment in reservation["flights"]:
            day = view.get("flights", segment["flight_number"])["dates"][segment["date"]]
            if day.get("available_seats", {}).get(cabin, 0) < len(reservation["passengers"]):
                return False
        return True

    return enough


def test_basic_economy_no_flight_change(db: Database, view: StateView) -> None:
    basic = both(
        upcoming(view), has_card(db), seats(view, "economy"), lambda r: r["cabin"] == "basic_economy"
    )
    reservation = find(db, basic)
    first = legs(reservation)[0]
    moved = [{**first, "date": "2024-05-29" if first["date"] != "2024-05-29" else "2024-05-28"}]
    rule = "airline.basic_economy_no_flight_change"
    assert broken(rule, trace_of(db, change_flights(reservation, moved, card(db, reservation)))) == [0]
    upgrade = change_flights(reservation, legs(reservation), card(db, reservation), cabin="economy")
    assert broken(rule, trace_of(db, upgrade)) == []
    changed_after_upgrade = change_flights(
        reservation, moved + legs(reservation)[1:], card(db, reservation), "economy"
    )
    trace = trace_of(db, upgrade, changed_after_upgrade)
    assert trace.steps[0].ok and broken(rule, trace) == []


def test_same_origin_destination_trip_type(db: Database, view: StateView) -> None:
    direct = both(
        upcoming(view), has_card(db), lambda r: r["flight_type"] == "one_way" and len(r["flights"]) == 1
    )
    reservation = find(db, both(direct, lambda r: r["cabin"] != "basic_economy"))
    segment = reservation["flights"][0]
    elsewhere = next(
        n
        for n, f in db.table("flights").items()
        if f["origin"] == segment["origin"] and f["destination"] != segment["destination"]
    )
    rule = "airline.same_origin_destination_trip_type"
    wrong = [{"flight_number": elsewhere, "date": segment["date"]}]
    assert broken(rule, trace_of(db, change_flights(reservation, wrong, card(db, reservation)))) == [0]
    later = [{"flight_number": segment["flight_number"], "date": "2024-05-30"}]
    assert broken(rule, trace_of(db, change_flights(reservation, later, card(db, reservation)))) == []
    round_trip = find(db, both(upcoming(view), lambda r: r["flight_type"] == "round_trip"))
    one_way = change_flights(round_trip, legs(round_trip)[:1], "x")
    assert broken(rule, trace_of(db, one_way)) == [0]


def test_cabin_change_all_segments(db: Database, view: StateView) -> None:
    reservation = find(db, both(upcoming(view), has_card(db), lambda r: len(r["flights"]) >= 2))
    cabin = "business" if reservation["cabin"] != "business" else "economy"
    rule = "airline.cabin_change_all_segments"
    only_first = change_flights(reservation, legs(reservation)[:1], card(db, reservation), cabin)
    assert broken(rule, trace_of(db, only_first)) == [0]
    everything = change_flights(reservation, legs(reservation), card(db, reservation), cabin)
    assert broken(rule, trace_of(db, everything)) == []


def partly_flown(view: StateView) -> Callable[[Record], bool]:
    return lambda r: flown(view, r) and "available" in segment_statuses(view, r)


def test_no_change_after_flown(db: Database, view: StateView) -> None:
    rule = "airline.no_change_after_flown"
    used = find(db, both(partly_flown(view), lambda r: r["cabin"] != "basic_economy"))
    assert broken(rule, trace_of(db, change_flights(used, legs(used), "x"))) == [0]
    fresh = find(db, both(upcoming(view), lambda r: r["cabin"] != "basic_economy"))
    assert broken(rule, trace_of(db, change_flights(fresh, legs(fresh), "x"))) == []


def test_no_baggage_removal(db: Database) -> None:
    reservation = find(db, lambda r: r["total_baggages"] >= 1)
    rule = "airline.no_baggage_removal"
    total, nonfree = reservation["total_baggages"], reservation["nonfree_baggages"]
    bags = {"reservation_id": reservation["reservation_id"], "payment_id": "x"}
    fewer = act("update_reservation_baggages", **bags, total_baggages=total - 1, nonfree_baggages=nonfree)
    more = act("update_reservation_baggages", **bags, total_baggages=total + 1, nonfree_baggages=nonfree)
    assert broken(rule, trace_of(db, fewer)) == [0] and broken(rule, trace_of(db, more)) == []


def test_passenger_count_fixed(db: Database) -> None:
    reservation = find(db, lambda r: len(r["passengers"]) >= 2)
    rule = "airline.passenger_count_fixed"
    renamed = [{**p, "last_name": "Renamed"} for p in reservation["passengers"]]
    for passengers, expected in ((renamed[:-1], [0]), (renamed, [])):
        update = act(
            "update_reservation_passengers",
            reservation_id=reservation["reservation_id"],
            passengers=passengers,
        )
        assert broken(rule, trace_of(db, update)) == expected


def test_flight_change_payment(db: Database, view: StateView) -> None:
    def has(source: str) -> Callable[[Record], bool]:
        return lambda r: bool(methods(db, r, source))

    reservation = find(db, both(upcoming(view), has("certificate"), has("gift_card"), has("credit_card")))
    gift = methods(db, reservation, "gift_card")[0]
    rule = "airline.flight_change_payment"
    extra = int(gift["amount"] // 50) + 1
    bags = {"reservation_id": reservation["reservation_id"], "total_baggages": 20 + extra}
    nonfree = reservation["nonfree_baggages"]
    paying = {
        methods(db, reservation, "certificate")[0]["id"]: [0],
        gift["id"]: [0],
        card(db, reservation): [],
    }
    for payment_id, expected in paying.items():
        add = act(
            "update_reservation_baggages", **bags, nonfree_baggages=nonfree + extra, payment_id=payment_id
        )
        assert broken(rule, trace_of(db, add)) == expected, payment_id
    covered = act("update_reservation_baggages", **bags, nonfree_baggages=nonfree, payment_id=gift["id"])
    assert broken(rule, trace_of(db, covered)) == []
    certificate = methods(db, reservation, "certificate")[0]["id"]
    assert broken(rule, trace_of(db, change_flights(reservation, legs(reservation), certificate))) == [0]


def test_cancelled_is_final(db: Database) -> None:
    rule = "airline.cancelled_is_final"
    gone = next(r for r in db.table("reservations").values() if r.get("status") == "cancelled")
    assert broken(rule, trace_of(db, act("cancel_reservation", reservation_id=gone["reservation_id"]))) == [0]
    live = find(db, lambda r: True)
    cancel = act("cancel_reservation", reservation_id=live["reservation_id"])
    passengers = act("update_reservation_passengers", reservation_id=live["reservation_id"], passengers=[])
    assert broken(rule, trace_of(db, cancel)) == [] and broken(rule, trace_of(db, cancel, passengers)) == [1]


# --- cancelling ----------------------------------------------------------------------------------


def cancel_case(db: Database, view: StateView, test: Callable[[Record], bool]) -> list[int | None]:
    reservation = find(db, both(upcoming(view), test))
    trace = trace_of(db, act("cancel_reservation", reservation_id=reservation["reservation_id"]))
    return broken("airline.cancellation_eligibility", trace)


def test_cancellation_eligibility(db: Database, view: StateView) -> None:
    def stale(r: Record) -> bool:
        return not booked_within_window(r["created_at"])

    def plain(r: Record) -> bool:
        return stale(r) and r["insurance"] == "no" and r["cabin"] != "business"

    assert cancel_case(db, view, plain) == [0]
    assert (
        cancel_case(db, view, lambda r: stale(r) and r["insurance"] == "no" and r["cabin"] == "business")
        == []
    )
    assert (
        cancel_case(db, view, lambda r: r["insurance"] == "no" and not stale(r) and r["cabin"] != "business")
        == []
    )
    assert cancel_case(db, view, lambda r: plain({**r, "insurance": "no"}) and r["insurance"] == "yes") == []
    hit = find(db, lambda r: "cancelled" in segment_statuses(view, r) and not flown(view, r))
    assert eligible_without_insurance(view, hit)
    trace = trace_of(db, act("cancel_reservation", reservation_id=hit["reservation_id"]))
    assert broken("airline.cancellation_eligibility", trace) == []


def test_no_cancel_after_flown(db: Database, view: StateView) -> None:
    rule = "airline.no_cancel_after_flown"
    used = find(db, partly_flown(view))
    assert broken(rule, trace_of(db, act("cancel_reservation", reservation_id=used["reservation_id"]))) == [0]
    fresh = find(db, upcoming(view))
    assert broken(rule, trace_of(db, act("cancel_reservation", reservation_id=fresh["reservation_id"]))) == []


# --- compensation --------------------------------------------------------------------------------


def disrupted(view: StateView, status: str, db: Database, membership: str) -> Record:
    return find(
        db,
        lambda r: (
            status in segment_statuses(view, r)
            and user(db, r)["membership"] == membership
            and (membership != "regular" or (r["insurance"] == "no" and r["cabin"] != "business"))
            and not any(
                status in segment_statuses(view, other)
                for key in user(db, r)["reservations"]
                if key != r["reservation_id"] and (other := db.table("reservations")[key])
            )
        ),
    )


def certificate(reservation: Record, per_passenger: int) -> Action:
    amount = per_passenger * len(reservation["passengers"])
    return act("send_certificate", user_id=reservation["user_id"], amount=amount)


def test_compensation_for_a_cancelled_flight(db: Database, view: StateView) -> None:
    rule = "airline.compensation_eligibility_and_amount"
    gold = disrupted(view, "cancelled", db, "gold")
    assert broken(rule, trace_of(db, certificate(gold, 100))) == []
    assert broken(rule, trace_of(db, certificate(gold, 150))) == [0]
    assert broken(rule, trace_of(db, certificate(gold, 100), certificate(gold, 100))) == [1]
    regular = disrupted(view, "cancelled", db, "regular")
    assert broken(rule, trace_of(db, certificate(regular, 100))) == [0]


def test_compensation_for_a_delayed_flight_comes_after_the_change(db: Database, view: StateView) -> None:
    rule = "airline.compensation_eligibility_and_amount"
    late = disrupted(view, "delayed", db, "silver")
    assert broken(rule, trace_of(db, certificate(late, 50))) == [0]
    cancel = act("cancel_reservation", reservation_id=late["reservation_id"])
    assert broken(rule, trace_of(db, cancel, certificate(late, 50))) == []
    assert broken(rule, trace_of(db, cancel, certificate(late, 100))) == [1]


def test_no_compensation_without_a_disruption(db: Database, view: StateView) -> None:
    rule = "airline.compensation_eligibility_and_amount"
    users = db.table("users")
    calm = next(
        key
        for key, u in users.items()
        if u["membership"] == "gold"
        and not any(
            {"cancelled", "delayed"} & set(segment_statuses(view, db.table("reservations")[r]))
            for r in u["reservations"]
        )
    )
    assert broken(rule, trace_of(db, act("send_certificate", user_id=calm, amount=100))) == [0]


# --- dialogue rules, through the env --------------------------------------------------------------


def dialogue_env(user_id: str, text: str) -> ApigenEnv:
    task = Task(
        id="t",
        user_id=user_id,
        instruction=text,
        goal=Goal(known={"user_id": user_id}, requests=[Request(text=text)]),
    )
    return ApigenEnv(DOMAIN, tasks=[task])


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def env_broken(env: ApigenEnv, rule_id: str) -> list[int | None]:
    return [v.step for v in env.violations() if v.rule == rule_id]


def insured_only(db: Database, view: StateView) -> Record:
    return find(
        db,
        both(upcoming(view), lambda r: r["insurance"] == "yes" and not eligible_without_insurance(view, r)),
    )


@pytest.mark.parametrize(("reason", "expected"), [("I am sick with the flu", []), ("my plans changed", [0])])
def test_insurance_reason_covered(db: Database, view: StateView, reason: str, expected: list[int]) -> None:
    reservation = insured_only(db, view)
    key = reservation["reservation_id"]
    env = dialogue_env(reservation["user_id"], f"Please cancel reservation {key}: {reason}.")
    env.reset(options={"task_id": "t"})
    env.step(f"I will cancel reservation {key}. Do you confirm (yes/no)?")
    env.step(call("cancel_reservation", reservation_id=key))
    assert env_broken(env, "airline.insurance_reason_covered") == expected
    assert env_broken(env, "airline.confirm_before_write") == []


def test_confirm_before_write(db: Database, view: StateView) -> None:
    reservation = insured_only(db, view)
    key = reservation["reservation_id"]
    env = dialogue_env(reservation["user_id"], f"Please cancel reservation {key}, I have a fever.")
    env.reset(options={"task_id": "t"})
    env.step(call("cancel_reservation", reservation_id=key))
    assert env_broken(env, "airline.confirm_before_write") == [0]


@pytest.mark.parametrize(
    ("complaint", "expected"),
    [("My flight was cancelled and I want compensation.", []), ("My flight was cancelled.", [0])],
)
def test_compensation_only_when_asked(
    db: Database, view: StateView, complaint: str, expected: list[int]
) -> None:
    reservation = disrupted(view, "cancelled", db, "gold")
    env = dialogue_env(reservation["user_id"], complaint)
    env.reset(options={"task_id": "t"})
    amount = 100 * len(reservation["passengers"])
    env.step(f"I will send user {reservation['user_id']} a certificate of {amount}. Do you confirm (yes/no)?")
    env.step(call("send_certificate", user_id=reservation["user_id"], amount=amount))
    assert env_broken(env, "airline.compensation_only_when_asked") == expected
    assert env_broken(env, "airline.compensation_eligibility_and_amount") == []


def test_one_tool_call_per_turn(db: Database) -> None:
    reservation = find(db, lambda r: True)
    env = dialogue_env(reservation["user_id"], "What is in my profile?")
    env.reset(options={"task_id": "t"})
    read = {"name": "get_user_details", "arguments": json.dumps({"user_id": reservation["user_id"]})}
    calls = [{"id": f"c{i}", "type": "function", "function": read} for i in range(2)]
    env.step({"role": "assistant", "content": None, "tool_calls": calls})
    env.step({"role": "assistant", "content": None, "tool_calls": calls[:1]})
    assert env_broken(env, "airline.one_tool_call_per_turn") == [0]


@pytest.mark.parametrize(
    ("said", "expected"),
    [(None, [0]), ("I'm sorry, but I cannot help with a partly flown trip using my tools.", [])],
)
def test_transfer_only_out_of_scope(db: Database, said: str | None, expected: list[int]) -> None:
    reservation = find(db, lambda r: True)
    env = dialogue_env(reservation["user_id"], "I want to change my trip.")
    env.reset(options={"task_id": "t"})
    if said:
        env.step(said)
    env.step(call("transfer_to_human_agents", summary="the user wants to change a partly flown trip"))
    assert env_broken(env, "airline.transfer_only_out_of_scope") == expected


# --- τ-bench's gold traces -------------------------------------------------------------------------

TAU_BENCH_GOLD_BREAKS = {
    "10": {"airline.cancellation_eligibility"},  # cancels an old, uninsured economy trip
    "16": {"airline.compensation_eligibility_and_amount"},  # delay compensated without a change
    "19": {
        "airline.same_origin_destination_trip_type",
        "airline.baggage_allowance",
    },  # LGA → JFK; a free bag paid
    "23": {"airline.baggage_allowance"},  # a gold member pays for free bags
    "26": {"airline.no_cancel_after_flown"},  # cancels a flown trip
    "27": {"airline.no_cancel_after_flown"},
    "34": {"airline.cancellation_eligibility"},  # an upgrade does not make a trip cancellable
    "45": {"airline.compensation_eligibility_and_amount"},  # the "delayed" flight had landed on time
    "46": {"airline.compensation_eligibility_and_amount"},
}
"""Where τ-bench's gold actions break the policy (all other gold traces are clean)."""


def test_tau_bench_gold_traces_break_only_known_rules(anchors: Path) -> None:
    data = anchors / "airline"
    database = DOMAIN.database(data)
    found: dict[str, set[str]] = {}
    for task in DOMAIN.tasks("test", data):
        violations = DOMAIN.policy.check(trace_of(database, *task.actions))
        if violations:
            found[task.id] = {v.rule for v in violations}
    assert found == TAU_BENCH_GOLD_BREAKS


def _all_rule_ids() -> Iterator[str]:
    return (r.id for r in DOMAIN.policy.rules)


def test_every_rule_is_exercised_here() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    missing = [rule_id for rule_id in _all_rule_ids() if f'"{rule_id}"' not in source]
    assert missing == []
