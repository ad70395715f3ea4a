"""The scripted user: identity answers from the facts it knows, and how well it understands agents;
the oracle's turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.task import Goal, Request, Task
from apigen_gym.core.user import STOP
from apigen_gym.kit.rules import is_affirmative
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.players.scripted_user import ACCEPT, WAIT, ScriptedUser, sentences


def user_knowing(**known: str) -> ScriptedUser:
    user = ScriptedUser()
    goal = Goal(known=known, requests=[Request(text="I need help with my booking.")])
    user.start(Task(id="t", instruction="...", goal=goal))
    return user


@pytest.mark.parametrize(
    ("known", "asked", "answer"),
    [
        ({"email": "a@b.co"}, "What is your email address?", "My email is a@b.co."),
        (
            {"first_name": "Ana", "last_name": "Lee", "zip": "12345"},
            "Your first name, last name and zip code, please.",
            "I'm Ana Lee, zip code 12345.",
        ),
        (
            {"first_name": "Ana", "last_name": "Lee", "birth_date": "1990-02-03"},
            "Could you tell me your name and date of birth to authenticate you?",
            "I'm Ana Lee, born on 1990-02-03.",
        ),
        (
            {"email": "a@b.co", "first_name": "Ana", "last_name": "Lee", "zip": "12345"},
            "Please tell me your first name, last name and zip code.",
            "I'm Ana Lee, zip code 12345.",
        ),
        ({"user_id": "ana_lee_1"}, "To identify you, what is your name?", "My user id is ana_lee_1."),
    ],
)
def test_identity_answers_use_only_known_facts(known: dict[str, str], asked: str, answer: str) -> None:
    assert user_knowing(**known).respond(asked) == answer


def test_a_user_who_knows_nothing_does_not_invent_an_identity() -> None:
    reply = user_knowing().respond("What is your email address?")
    assert "@" not in reply and "I need help with my booking." in reply


def test_confirmation_refusal_and_the_end() -> None:
    user = user_knowing(email="a@b.co")
    assert user.respond("I will cancel order #1. Do you confirm (yes/no)?") == "Yes, please go ahead."
    assert user.respond("I'm sorry, but I can't do that: the order was delivered.") == "I see. I understand."
    assert user.respond("Is there anything else I can help you with?").endswith(STOP)


# --- understanding: hand-written agent questions -------------------------------------------------

QUESTIONS = [json.loads(line) for line in (Path(__file__).parent / "data" / "agent_questions.jsonl").open()]
"""Agent questions written by hand, in the ways agents ask them (``held_out``: written after the user's
patterns were last tuned on the others)."""
GOALS = {
    "retail": Goal(
        known={"email": "mia.li@example.com", "first_name": "Mia", "last_name": "Li", "zip": "78701"},
        requests=[
            Request(
                text="I'd like to exchange the desk lamp in my order #W2390428 for the one with color black, "
                "because the white one clashes with my room. Please use my Visa card ending in 4321 for any "
                "price difference, and ship it to 12 Maple Avenue, Austin, TX 78701."
            ),
            Request(text="Please cancel my order #W5199551 because I ordered it by mistake."),
        ],
    ),
    "airline": Goal(
        known={"user_id": "mia_li_3668"},
        requests=[
            Request(
                text="My user id is mia_li_3668. Please add 1 checked bag to my reservation 4WQ150 for me "
                "and Noah Li (saved in my profile). If there is a fee, use my gift card ending in 0020."
            ),
            Request(text="How many checked bags in total can we bring for free on my reservation 4WQ150?"),
        ],
    ),
    "travel": Goal(
        known={"email": "mia.li@example.com"},
        requests=[
            Request(
                text="For my trip TR482913 to Lisbon (LIS), I need the cheapest compact rental car in "
                "Lisbon from March 14 to March 18, with Noah Li driving, because we want to visit Sintra. "
                "Please charge my Visa card ending in 6962."
            ),
            Request(text="Is my flight TP1234 from Lisbon (LIS) to Paris (CDG) on March 18 on time?"),
        ],
    ),
}
EXPECTED = {
    "retail": {
        "identity": ("mia.li@example.com", "Mia Li, zip code 78701"),
        "reference": ("#W2390428",),
        "item": ("desk lamp",),
        "payment": ("Visa card ending in 4321",),
        "reason": ("because the white one clashes",),
        "address": ("12 Maple Avenue",),
    },
    "airline": {
        "identity": ("mia_li_3668",),
        "reference": ("4WQ150",),
        "payment": ("gift card ending in 0020",),
        "travellers": ("Noah Li",),
    },
    "travel": {
        "identity": ("mia.li@example.com",),
        "reference": ("TR482913",),
        "payment": ("Visa card ending in 6962",),
        "reason": ("because we want to visit Sintra",),
        "travellers": ("Noah Li",),
    },
}
"""What a sensible answer holds, by domain and what the agent asks about."""


def answer(domain: str, question: str) -> str:
    user = ScriptedUser()
    user.start(Task(id="t", instruction="...", goal=GOALS[domain]))
    return user.respond(question)


def restates(domain: str, reply: str) -> bool:
    """Whether ``reply`` says the current request again (its main sentence at least)."""
    return max(sentences(GOALS[domain].requests[0].text), key=len) in reply


def sensible(domain: str, asks: str, reply: str) -> bool:
    """Whether ``reply`` is the kind of answer ``asks`` calls for."""
    first, second = (r.text for r in GOALS[domain].requests)
    if asks in EXPECTED[domain]:
        return any(fact in reply for fact in EXPECTED[domain][asks])
    if asks == "confirm":
        return is_affirmative(reply)
    if asks in ("what_else", "done"):
        return second in reply
    if asks in ("how_help", "unknown"):  # what it cannot (or need not) answer: its request again
        return restates(domain, reply)
    return reply in {"decline": ACCEPT, "wait": WAIT}[asks]


def test_the_question_set_is_hand_written_and_large_enough() -> None:
    assert len(QUESTIONS) >= 100
    assert len({q["text"] for q in QUESTIONS}) == len(QUESTIONS)
    assert {q["domain"] for q in QUESTIONS} == set(GOALS)
    asked = {q["asks"] for q in QUESTIONS}
    assert {"identity", "reference", "item", "confirm", "payment", "what_else"} <= asked


def test_the_user_answers_agent_questions_sensibly_and_never_dead_ends() -> None:
    wrong = []
    for q in QUESTIONS:
        reply = answer(q["domain"], q["text"])
        if not sensible(q["domain"], q["asks"], reply):
            wrong.append((q["text"], reply))
        fine = sensible(q["domain"], q["asks"], reply) or restates(q["domain"], reply)
        assert fine, f"dead end: {q['text']!r} -> {reply!r}"
    assert wrong == []  # every one of the questions, held-out ones included, gets the answer it calls for


def test_seeded_wording_varies_and_repeats_per_seed() -> None:
    task = Task(id="t", instruction="...", goal=GOALS["retail"])
    asks = ["What is your email?", "Shall I proceed (yes/no)?", "Is there anything else?"]

    def play(seed: int | None) -> list[str]:
        user = ScriptedUser()
        return [user.start(task, seed), *(user.respond(a) for a in asks)]

    assert play(None) == play(None) and play(7) == play(7)
    assert len({tuple(play(seed)) for seed in range(12)}) > 6
    for said in (play(seed) for seed in range(12)):
        assert "mia.li@example.com" in said[1] and is_affirmative(said[2])
        assert GOALS["retail"].requests[1].text in said[3]


def test_the_oracle_answers_each_request_before_the_next_is_asked() -> None:
    """travel-test-104: the refund of request 1 ('105') is said before the user asks request 2, whose
    total ('724') is said after it."""
    env = ApigenEnv("travel", split="test")
    observation, info = env.reset(options={"task_id": "travel-test-104"})
    agent = OracleAgent(env.domain.tools)
    agent.reset(info, env.task, env)
    done = False
    while not done:
        observation, reward, terminated, truncated, _ = env.step(agent.act(observation))
        done = terminated or truncated
    assert reward == 1.0
    second = env.task.effective_goal().requests[1].text
    asked = next(i for i, m in enumerate(env.messages) if m["role"] == "user" and second in m["content"])
    said = [
        (i, m["content"]) for i, m in enumerate(env.messages) if m["role"] == "assistant" and m["content"]
    ]
    first_answer = next(i for i, text in said if "105" in text)
    second_answer = next(i for i, text in said if "724" in text)
    assert first_answer < asked < second_answer
