"""The paraphrase banks: every wording of the oracle is one the scripted user understands and the
policy's own detectors accept; seeded players repeat themselves per seed and vary across seeds."""

from __future__ import annotations

from typing import Any

import pytest

from apigen_gym.core.domain import load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.policy import Step, Trace
from apigen_gym.core.task import Goal, Request, Task
from apigen_gym.core.user import STOP
from apigen_gym.kit.rules import is_affirmative, transfer_rule
from apigen_gym.loopback.models import follows_script
from apigen_gym.players import oracle, scripted_user
from apigen_gym.players.oracle import OracleAgent, plan_oracle_moves
from apigen_gym.players.scripted_user import ScriptedUser
from apigen_gym.players.wording import Phrasing

FIRST = "I'd like to cancel my order #W2390428 because I no longer need it."
SECOND = "How much did I pay in total for my order #W5199551?"


def user() -> ScriptedUser:
    known = {"email": "a@b.co", "first_name": "Ana", "last_name": "Lee", "zip": "12345"}
    goal = Goal(known=known, requests=[Request(text=FIRST), Request(text=SECOND)])
    played = ScriptedUser()
    played.start(Task(id="t", instruction="...", goal=goal), seed=1)
    return played


@pytest.mark.parametrize("text", oracle.ASK_IDENTITY)
def test_every_identity_question_gets_the_email(text: str) -> None:
    assert "a@b.co" in user().respond(text)


@pytest.mark.parametrize("text", oracle.CONFIRM)
def test_every_confirmation_question_gets_an_explicit_yes(text: str) -> None:
    assert is_affirmative(user().respond(text.format(what="cancel pending order (order id #W2390428)")))


@pytest.mark.parametrize("text", oracle.WHAT_ELSE)
def test_every_what_else_brings_the_next_request(text: str) -> None:
    assert SECOND in user().respond(text)


@pytest.mark.parametrize("text", [*oracle.REFUSE, *oracle.TRANSFER_NOTICE])
def test_every_refusal_and_transfer_notice_is_accepted(text: str) -> None:
    assert user().respond(text.format(why="the order was delivered.")) in scripted_user.ACCEPT


@pytest.mark.parametrize("text", oracle.TRANSFER_NOTICE)
def test_every_transfer_notice_says_the_request_is_out_of_scope(text: str) -> None:
    check = transfer_rule("test.transfer")
    messages = [
        {"role": "user", "content": "I need help."},
        {"role": "assistant", "content": text},
        {"role": "assistant", "content": None},
    ]
    step = Step(0, "transfer_to_human_agents", {"summary": "s"}, "Transfer successful", None, None, 2)
    assert list(check(Trace(steps=[step], messages=messages))) == []


def test_every_user_agreement_is_an_explicit_yes_and_every_goodbye_stops() -> None:
    assert all(is_affirmative(text) for text in scripted_user.YES)
    assert all(not is_affirmative(text) for text in scripted_user.ASK_FIGURE)
    assert all(text.endswith(STOP) for text in (*scripted_user.DONE, *scripted_user.NOTHING_ELSE))
    assert all(text.endswith(STOP) for text in oracle.GOODBYE)


def test_phrasing_is_the_first_wording_without_a_seed_and_a_repeatable_draw_with_one() -> None:
    bank = ("a", "b", "c", "d")
    assert {Phrasing().pick(bank) for _ in range(5)} == {"a"}
    draws = [[Phrasing(seed).pick(bank) for _ in range(8)] for seed in range(6)]
    assert draws == [[Phrasing(seed).pick(bank) for _ in range(8)] for seed in range(6)]
    assert len({tuple(d) for d in draws}) > 1 and len({w for d in draws for w in d}) == len(bank)


def test_the_oracle_words_a_task_per_seed() -> None:
    domain = load_domain("retail")
    task = domain.tasks("test")[1]
    canonical = plan_oracle_moves(task, domain.tools)
    assert plan_oracle_moves(task, domain.tools) == canonical
    seeded = [plan_oracle_moves(task, domain.tools, Phrasing(f"{s}")) for s in range(8)]
    assert len({tuple(map(repr, m)) for m in seeded}) > 1
    assert all([type(m) for m in moves] == [type(m) for m in canonical] for moves in seeded)
    env = ApigenEnv("retail", split="test")
    for seed in range(4):
        observation, info = env.reset(seed=seed, options={"task_id": task.id})
        agent = OracleAgent(domain.tools, seed=seed)
        agent.reset(info, env.task)
        done = False
        while not done:
            observation, reward, terminated, truncated, info = env.step(agent.act(observation))
            done = terminated or truncated
        assert reward == 1.0 and info["reward_info"]["violations"] == []


@pytest.mark.parametrize("greeting", scripted_user.GREETINGS)
def test_every_opening_is_found_again_whatever_its_greeting(greeting: str) -> None:
    assert scripted_user.canonical_opening(f"{greeting} {FIRST}") == f"{scripted_user.GREETINGS[0]} {FIRST}"


def test_a_seeded_conversation_still_follows_its_script() -> None:
    """The loopback server tells tasks apart by replaying the unseeded user: what a reply carries
    (a request, identity facts) must match whatever the wording."""
    env = ApigenEnv("retail", split="test")
    task, other = env.tasks[1], env.tasks[2]

    def conversation(seed: int | None) -> list[dict[str, Any]]:
        observation, info = env.reset(seed=seed, options={"task_id": task.id})
        agent = OracleAgent(env.domain.tools)
        agent.reset(info, env.task)
        done = False
        while not done:
            observation, _, terminated, truncated, _ = env.step(agent.act(observation))
            done = terminated or truncated
        return list(env.messages[1:])

    seeded, plain = conversation(3), conversation(None)
    assert [m["content"] for m in seeded if m["role"] == "user"] != [
        m["content"] for m in plain if m["role"] == "user"
    ]
    assert follows_script(task, seeded) and follows_script(task, plain)
    assert not follows_script(other, seeded)
