"""The scripted user: identity answers from what the goal says the user knows."""

from __future__ import annotations

import pytest

from apigen_gym.core.task import Goal, Request, Task
from apigen_gym.core.user import STOP
from apigen_gym.players.scripted_user import ScriptedUser


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
