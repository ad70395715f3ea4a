"""Evolving goals in every domain: a change of mind, late context and a follow-up on an answer.

The shipped ``evolving`` splits, the checks that make a twist verifiable, the oracle that solves every
evolving task, an agent that acts on the first request without waiting (and fails every one), and
the LLM user's prompt, through the loopback server.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from apigen_gym.core.domain import load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.task import TWIST_KINDS, Action, Task
from apigen_gym.core.tools import ToolKind
from apigen_gym.core.user import STOP
from apigen_gym.kit.evolving import twist_problems
from apigen_gym.kit.sampling import problems, task_rows
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.loopback.server import LoopbackServer, ServerConfig
from apigen_gym.players.agent import Agent
from apigen_gym.players.llm_users import AGENT_GREETING, USER_PROMPT, LLMUser, situation
from apigen_gym.players.oracle import OracleAgent, call
from apigen_gym.util.aio import run_sync

DOMAINS = ("retail", "airline", "travel")
SPLIT = "evolving"


def sampler_of(domain: str) -> Any:
    return __import__(f"apigen_gym.domains.{domain}.sampler", fromlist=["SPLITS"])


def twisted(task: Task) -> list[Any]:
    return [r for r in task.effective_goal().requests if r.twist is not None]


class HastyAgent(Agent):
    """Acts on each request as first made: its reads and the writes first asked for, never asking for
    a confirmation or waiting for what comes next; then reports the outputs and leaves."""

    name = "hasty"

    def reset(self, info: dict[str, Any], task: Task | None = None, env: Any = None) -> None:
        assert task is not None
        actions: list[Action] = []
        for request in task.effective_goal().requests:
            actions += [task.actions[i] for i in request.actions]
            if request.twist is not None and request.twist.kind != "follow_up":
                actions += request.twist.abandoned  # a follow-up's first words ask for nothing more
        self._moves = [call(a) for a in actions]
        self._moves.append(f"Done: {'; '.join(task.outputs)}. Goodbye! {STOP}")
        self._moves.reverse()

    def act(self, observation: str) -> Any:
        return self._moves.pop()


def play(env: ApigenEnv, task_id: str, agent: Agent, seed: int | None = None) -> tuple[float, dict[str, Any]]:
    observation, info = env.reset(seed=seed, options={"task_id": task_id})
    agent.reset(info, env.task, env)
    while True:
        observation, reward, terminated, truncated, info = env.step(agent.act(observation))
        if terminated or truncated:
            return float(reward), info


@pytest.fixture(scope="module", params=DOMAINS)
def domain(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def env(domain: str) -> ApigenEnv:
    return ApigenEnv(domain, split=SPLIT)


# --- the shipped splits -----------------------------------------------------------------------------


def test_each_twist_kind_has_its_share(domain: str) -> None:
    tasks = load_domain(domain).tasks(SPLIT)
    assert len(tasks) == sampler_of(domain).SPLITS[SPLIT].n == 45
    assert all(len(twisted(t)) == 1 and t.meta["twists"] == [twisted(t)[0].twist.kind] for t in tasks)
    assert Counter(twisted(t)[0].twist.kind for t in tasks) == dict.fromkeys(TWIST_KINDS, 15)
    moments = Counter((r.twist.kind, r.twist.when) for t in tasks for r in twisted(t))
    assert moments[("change_of_mind", "confirm")] and moments[("late_context", "confirm")]
    assert moments[("follow_up", "mention")] == 15
    assert any(t.goal is not None and len(t.goal.requests) > 1 for t in tasks)  # beside plain requests too


def test_the_split_regenerates_byte_for_byte(domain: str) -> None:
    world = load_domain(domain)
    spec = sampler_of(domain).SPLITS[SPLIT]
    tasks = sampler_of(domain).sample_tasks(world.database(), spec.n, spec.seed, SPLIT)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in task_rows(tasks))
    assert text == (world.home / "tasks" / f"{SPLIT}.jsonl").read_text(encoding="utf-8")


def test_every_twist_is_verifiable(domain: str) -> None:
    world = load_domain(domain)
    database = world.database()
    assert {t.id: p for t in world.tasks(SPLIT) if (p := problems(world, database, t))} == {}
    for task in world.tasks(SPLIT):
        (request,) = twisted(task)
        writes = {t.name for t in world.tools.of_kind(ToolKind.WRITE)}
        assert not any(task.actions[i].name in writes for i in request.actions)  # nothing done before
        assert any(task.actions[i].name in writes for i in request.twist.actions)  # the final wish writes
        assert request.twist.abandoned and not any(a in task.actions for a in request.twist.abandoned)


def test_the_sampler_builds_each_kind_on_demand(domain: str) -> None:
    world = load_domain(domain)
    build = sampler_of(domain).build_task
    users = sorted(world.database().table("users"))
    rng = random.Random(3)
    for kind in TWIST_KINDS:
        built = [build(world.database(), rng, rng.choice(users), kind) for _ in range(40)]
        assert any(t is not None and twisted(t)[0].twist.kind == kind for t in built), kind


# --- playing them -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [None, 5])
def test_the_oracle_solves_every_evolving_task(env: ApigenEnv, seed: int | None) -> None:
    for task in env.tasks:
        reward, info = play(env, task.id, OracleAgent(env.domain.tools, seed=seed), seed)
        assert reward == 1.0, (task.id, info["reward_info"])
        assert info["reward_info"]["violations"] == [] and info["termination"] in ("user_stop", "transfer")
        (request,) = twisted(task)
        said = [m["content"] for m in env.messages if m["role"] == "user"]
        assert request.twist.text in said  # the user changed course at its moment


def test_an_agent_that_does_not_wait_fails_every_evolving_task(env: ApigenEnv) -> None:
    rewards = {task.id: play(env, task.id, HastyAgent())[0] for task in env.tasks}
    assert rewards == dict.fromkeys(rewards, 0.0)


# --- the checks catch what is wrong -----------------------------------------------------------------


def test_twist_problems_name_what_is_wrong() -> None:
    world = load_domain("retail")
    database = world.database()
    task = next(
        t
        for t in world.tasks(SPLIT)
        if twisted(t)[0].twist.kind == "change_of_mind"
        and "order_id" in twisted(t)[0].twist.abandoned[0].arguments
    )
    goal = task.effective_goal()
    number = next(i for i, r in enumerate(goal.requests) if r.twist is not None)
    request = goal.requests[number]
    twist = request.twist
    assert twist is not None

    def changed(**update: Any) -> list[str]:
        requests = list(goal.requests)
        requests[number] = request.model_copy(update={"twist": twist.model_copy(update=update)})
        return twist_problems(world, database, goal.model_copy(update={"requests": requests}), task.actions)

    assert twist_problems(world, database, goal, task.actions) == []
    assert any("abandons no write" in p for p in changed(abandoned=[]))
    writes = {t.name for t in world.tools.of_kind(ToolKind.WRITE)}
    gold_write = next(task.actions[i] for i in twist.actions if task.actions[i].name in writes)
    assert any("among the gold actions" in p for p in changed(abandoned=[gold_write]))
    unknown_order = {**twist.abandoned[0].arguments, "order_id": "#W0"}
    failing = twist.abandoned[0].model_copy(update={"arguments": unknown_order})
    assert any("would fail at the moment" in p for p in changed(abandoned=[failing]))
    assert any("no tool output before the moment" in p for p in changed(when="mention", cue="987654.32"))
    assert any("makes no write" in p for p in changed(actions=[]))


# --- the LLM user's prompt, through the loopback server -------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(ServerConfig()) as running:
        yield running


def user_client(server: LoopbackServer) -> LLMClient:
    return LLMClient(LLMSettings(model="scripted-user:retail", base_url=server.base_url, api_key="x"))


@pytest.mark.parametrize("kind", TWIST_KINDS)
def test_the_llm_user_is_told_when_to_change_course(server: LoopbackServer, kind: str) -> None:
    env = ApigenEnv("retail", split=SPLIT, user=LLMUser(user_client(server)))
    task = next(t for t in env.tasks if twisted(t)[0].twist.kind == kind)
    (request,) = twisted(task)
    told = situation(task)
    assert task.instruction in told and request.twist.text in told
    confirm = request.twist.when == "confirm"
    assert ("When the agent asks you to confirm it" if confirm else "When the agent tells you") in told
    reward, info = play(env, task.id, OracleAgent(env.domain.tools))
    assert reward == 1.0 and info["reward_info"]["violations"] == []
    said = [m["content"] for m in env.messages if m["role"] == "user"]
    assert request.twist.text in said


def test_a_user_model_not_told_keeps_its_first_wish(server: LoopbackServer) -> None:
    task = next(t for t in load_domain("retail").tasks(SPLIT) if twisted(t)[0].twist.when == "confirm")
    (request,) = twisted(task)
    confirm = "I am about to do what you asked. Do you confirm (yes/no)?"

    def reply(system: str) -> str:
        client = user_client(server)
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": AGENT_GREETING},
            {"role": "assistant", "content": f"Hi! {task.effective_goal().requests[0].text}"},
        ]
        if task.effective_goal().requests[0] is not request:
            messages += [
                {"role": "user", "content": "Is there anything else I can help you with?"},
                {"role": "assistant", "content": request.text},
            ]
        messages.append({"role": "user", "content": confirm})
        try:
            return run_sync(client.complete(messages)).content
        finally:
            run_sync(client.aclose())

    assert reply(USER_PROMPT.format(situation=situation(task), stop=STOP)) == request.twist.text
    assert reply(USER_PROMPT.format(situation=task.instruction, stop=STOP)) == "Yes, please go ahead."
