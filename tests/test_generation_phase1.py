"""APIGen-MT phase 1: offline runs, resume, feedback rounds, the committee, recombination, decontamination.

LLM proposers and judges are driven through the real ``openai`` client (via ``LLMClient``) against a
small scripted OpenAI-compatible server on 127.0.0.1 defined here: a queue of canned answers per model
name, and a record of every request it received.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from apigen_gym.core.database import thaw
from apigen_gym.core.domain import load_domain
from apigen_gym.core.session import replay
from apigen_gym.core.task import TWIST_KINDS, Action, Goal, Request, Task
from apigen_gym.generation.blueprint import CRITERIA, Blueprint, ProposalError, ProposalRecord, RemovedRecord
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.context import ContextSampler, split_policy
from apigen_gym.generation.decontam import Decontaminator, footprint
from apigen_gym.generation.personas import PERSONAS
from apigen_gym.generation.phase1 import Phase1Stats, run_phase1
from apigen_gym.generation.proposers import (
    FEEDBACK_HEADER,
    TemplateProposer,
    blueprint_of,
    parse_draft,
    reword,
)
from apigen_gym.generation.recombine import combine
from apigen_gym.generation.store import RunPaths, read_models
from apigen_gym.generation.validators import Committee, check_rules, forbidden_sequences
from apigen_gym.kit.sampling import bucket
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings
from apigen_gym.util.executors import Job, LocalExecutor, Pool
from apigen_gym.util.jsonio import canonical

DOMAIN = load_domain("retail")
DATABASE = DOMAIN.database()
TEST_TASKS = DOMAIN.tasks("test")
PROVENANCE_KEYS = {
    "source",
    "proposer_model",
    "persona",
    "context",
    "rounds",
    "feedback",
    "votes",
    "state_change",
    "parents",
    "seed",
    "env_version",
    "harness_version",
}


# --- a scripted OpenAI-compatible server -----------------------------------------------------------


class ScriptedServer:
    """Answers each model from its queue of canned texts (the last one repeats); ``!400`` answers 400."""

    def __init__(self, script: dict[str, list[str]]):
        self.script = {model: deque(answers) for model, answers in script.items()}
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = body["model"]
        self.received.setdefault(model, []).append(body)
        queue = self.script.get(model)
        if not queue:
            return web.json_response({"error": {"message": f"no script for {model}"}}, status=404)
        text = queue.popleft() if len(queue) > 1 else queue[0]
        if text == "!400":
            return web.json_response(
                {"error": {"message": "scripted failure", "type": "invalid"}}, status=400
            )
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.received[model])}",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
            }
        )

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._answer)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def settings(self, model: str) -> LLMSettings:
        return LLMSettings(model=model, base_url=self.base_url, api_key="x", max_retries=0, timeout=10)

    def prompts(self, model: str) -> list[str]:
        """The last user message of every request ``model`` received."""
        return [
            next(m["content"] for m in reversed(b["messages"]) if m["role"] == "user")
            for b in self.received[model]
        ]


# --- helpers --------------------------------------------------------------------------------------


def _orders(user_id: str, status: str) -> list[str]:
    return [
        o
        for o in DATABASE.table("users")[user_id]["orders"]
        if DATABASE.table("orders")[o]["status"] == status
    ]


def _train_users_with_pending(count: int) -> list[str]:
    """Users outside the test split's buckets, each with a pending order."""
    users = [u for u in sorted(DATABASE.table("users")) if bucket(u) >= 4 and _orders(u, "pending")]
    return users[:count]


def _cancel_json(user_id: str, order_id: str) -> str:
    """A blueprint answer: identify ``user_id``, look at ``order_id``, cancel it."""
    email = DATABASE.table("users")[user_id]["email"]
    return json.dumps(
        {
            "user_id": user_id,
            "instruction": (
                f"You are a customer with email {email}. You want to cancel order {order_id} because you "
                "no longer need it. You are polite."
            ),
            "goal": {
                "known": {"email": email},
                "requests": [
                    {"text": f"Please cancel order {order_id}, I no longer need it.", "actions": [0, 1, 2, 3]}
                ],
            },
            "actions": [
                {"name": "find_user_id_by_email", "arguments": {"email": email}},
                {"name": "get_user_details", "arguments": {"user_id": user_id}},
                {"name": "get_order_details", "arguments": {"order_id": order_id}},
                {
                    "name": "cancel_pending_order",
                    "arguments": {"order_id": order_id, "reason": "no longer needed"},
                },
            ],
            "outputs": [],
        }
    )


def _judge(scores: int, reason: str = "fine") -> str:
    return json.dumps({**{c: scores for c in CRITERIA}, "reason": reason})


def _config(**overrides: Any) -> GenerationConfig:
    return GenerationConfig.model_validate({"domain": "retail", "phase": "1", **overrides})


def _rows(paths: RunPaths) -> list[ProposalRecord]:
    return list(read_models(paths.proposals, ProposalRecord))


# --- offline --------------------------------------------------------------------------------------


def test_offline_run_accepts_verified_tasks(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    stats = run_phase1(_config(n=20, recombine=0.0), paths)
    assert isinstance(stats, Phase1Stats) and stats.accepted == 20 and stats.recombined == 0
    tasks = list(read_models(paths.accepted, Task))
    assert len(tasks) == 20 and len({t.id for t in tasks}) == 20
    decontaminator = Decontaminator(DOMAIN, {"test": TEST_TASKS})
    for task in tasks:
        assert task.id.startswith("retail-gen-0-")
        provenance = task.meta["provenance"]
        assert set(provenance) >= PROVENANCE_KEYS
        assert provenance["source"] == "template" and provenance["env_version"] == DOMAIN.version
        assert provenance["context"]["walk"] and provenance["context"]["policy_sections"]
        assert provenance["persona"] in PERSONAS and task.instruction.endswith(provenance["persona"])
        session = replay(DOMAIN.tools, DATABASE, task.actions)
        assert all(step.ok for step in session.trace.steps)
        assert canonical(thaw(session.diff())) == canonical(provenance["state_change"])
        assert DOMAIN.policy.check(session.trace) == []
        assert decontaminator.overlap(task) is None
    assert stats.stages["format"].reached >= 20 and stats.stage_rates["policy"] == 1.0
    assert sum(stats.feedback_rounds.values()) == 20 + stats.duplicates_removed + stats.contaminated_removed
    assert json.loads(paths.stats.read_text())["phase1"]["accepted"] == 20
    assert "api_key" not in paths.config.read_text()


def test_offline_resume_gives_the_same_tasks(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    run_phase1(_config(n=20), paths)
    before = [t.model_dump() for t in read_models(paths.accepted, Task)]
    rows_before = len(_rows(paths))
    for path, cut in ((paths.accepted, 6), (paths.proposals, 4)):
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:-cut]) + lines[-cut][:20])  # and a torn last line
    stats = run_phase1(_config(n=20), paths)
    after = [t.model_dump() for t in read_models(paths.accepted, Task)]
    assert sorted(after, key=lambda t: t["id"]) == sorted(before, key=lambda t: t["id"])
    assert len({t["id"] for t in after}) == len(after)
    assert len(_rows(paths)) == rows_before
    assert stats.accepted == 20
    # a third run with nothing left to do changes nothing
    run_phase1(_config(n=20), paths)
    assert len(list(read_models(paths.accepted, Task))) == len(after) and len(_rows(paths)) == rows_before


def test_offline_recombination_is_verified(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    stats = run_phase1(_config(n=30, recombine=0.2), paths)
    assert stats.recombinations_tried >= stats.recombinations_accepted == stats.recombined > 0
    for task in read_models(paths.accepted, Task):
        if task.meta["source"] != "recombined":
            continue
        provenance = task.meta["provenance"]
        assert len(provenance["parents"]) >= 2 and task.id.startswith("retail-gen-0-r")
        session = replay(DOMAIN.tools, DATABASE, task.actions)
        assert all(step.ok for step in session.trace.steps) and not DOMAIN.policy.check(session.trace)
        assert canonical(thaw(session.diff())) == canonical(provenance["state_change"])
        identities = [a for a in task.actions if a.name.startswith("find_user_id")]
        assert len(identities) == 1


class CountedPool:
    """A pool that counts the batches it is handed."""

    def __init__(self, pool: Pool[Any], batches: list[int]):
        self.pool = pool
        self.workers = pool.workers
        self.batches = batches

    async def run(self, items: Sequence[Any]) -> None:
        self.batches.append(len(items))
        await self.pool.run(items)


class CountingExecutor:
    """The local executor, counting the batches a run hands it."""

    name = "local"

    def __init__(self) -> None:
        self.batches: list[int] = []

    @asynccontextmanager
    async def pool(self, job: Job[Any, Any]) -> AsyncIterator[Pool[Any]]:
        async with LocalExecutor().pool(job) as pool:
            yield CountedPool(pool, self.batches)

    def describe(self) -> str:
        return "local, counted"


class ThirdPartyProposer:
    """The template proposer under another name: a run cannot tell that it costs nothing, so it tries
    recombinations no faster than it needs them."""

    def __init__(self) -> None:
        self.inner = TemplateProposer.for_domain(DOMAIN, DATABASE)
        self.model = self.inner.model

    async def propose(self, context: Any, feedback: list[str], rng: random.Random) -> Any:
        return await self.inner.propose(context, feedback, rng)


def test_offline_recombinations_tried_ahead_keep_the_rows_of_one_batch_at_a_time(tmp_path: Path) -> None:
    ahead, paced = CountingExecutor(), CountingExecutor()
    fast, slow = RunPaths(tmp_path / "ahead"), RunPaths(tmp_path / "paced")
    run_phase1(_config(n=200, recombine=0.05), fast, executor=ahead)
    run_phase1(_config(n=200, recombine=0.05), slow, executor=paced, proposer=ThirdPartyProposer())
    for name in ("proposals", "accepted", "removed"):
        lines = [sorted(getattr(p, name).read_text().splitlines()) for p in (fast, slow)]
        assert lines[0] == lines[1], name
    assert any(t.meta["source"] == "recombined" for t in read_models(fast.accepted, Task))
    recombination_batches = (len(ahead.batches) - 1, len(paced.batches) - 1)  # the proposals: one batch
    assert 1 <= recombination_batches[0] < recombination_batches[1], (ahead.batches, paced.batches)
    assert sum(ahead.batches) > sum(paced.batches)  # some were tried and not kept


# --- LLM proposer with feedback -------------------------------------------------------------------


def test_policy_violation_then_fixed_after_feedback(tmp_path: Path) -> None:
    me, other = _train_users_with_pending(2)
    bad = _cancel_json(me, _orders(other, "pending")[0])  # cancels another user's order
    good = _cancel_json(me, _orders(me, "pending")[0])
    with ScriptedServer({"proposer": [bad, good]}) as server:
        paths = RunPaths(tmp_path)
        stats = run_phase1(_config(n=1, recombine=0.0, proposer=server.settings("proposer")), paths)
        prompts = server.prompts("proposer")
    first, second = _rows(paths)
    assert first.outcome == "retry" and first.verdicts[-1].stage == "policy"
    assert any(r.startswith("retail.single_user") for r in first.verdicts[-1].reasons)
    assert first.summary and "retail.single_user" in first.summary
    assert second.outcome == "accepted" and second.round == 2 and second.feedback == [first.summary]
    assert FEEDBACK_HEADER not in prompts[0] and FEEDBACK_HEADER in prompts[1] and first.summary in prompts[1]
    (task,) = read_models(paths.accepted, Task)
    assert task.meta["provenance"]["rounds"] == 2 and task.meta["provenance"]["feedback"] == [first.summary]
    assert task.meta["provenance"]["proposer_model"] == "proposer" and task.meta["source"] == "llm"
    assert stats.feedback_rounds == {2: 1} and stats.rejections == {"policy": {"retail.single_user": 1}}
    assert stats.prompt_tokens == 200 and stats.completion_tokens == 40
    # killed after round 1: the resumed run goes on with round 2 and round 1's feedback
    paths.proposals.write_text(paths.proposals.read_text().splitlines(keepends=True)[0])
    paths.accepted.write_text("")
    with ScriptedServer({"proposer": [good]}) as server:
        run_phase1(_config(n=1, recombine=0.0, proposer=server.settings("proposer")), paths)
        (prompt,) = server.prompts("proposer")
    assert first.summary in prompt
    assert [(r.round, r.outcome) for r in _rows(paths)] == [(1, "retry"), (2, "accepted")]
    assert list(read_models(paths.accepted, Task)) == [task]


def test_malformed_answer_is_a_format_rejection_with_feedback(tmp_path: Path) -> None:
    (me,) = _train_users_with_pending(1)
    good = _cancel_json(me, _orders(me, "pending")[0])
    with ScriptedServer(
        {"proposer": ["Sure! Here is a task: cancel the order.", f"```json\n{good}\n```"]}
    ) as server:
        paths = RunPaths(tmp_path)
        stats = run_phase1(_config(n=1, recombine=0.0, proposer=server.settings("proposer")), paths)
        prompts = server.prompts("proposer")
    first, second = _rows(paths)
    assert first.error is not None and first.blueprint is None
    assert first.verdicts[0].stage == "format" and first.verdicts[0].reasons[0].startswith("not json")
    assert first.summary is not None and first.summary in prompts[1]
    assert second.outcome == "accepted"
    assert stats.rejections == {"format": {"not json": 1}}


def test_parse_draft_reports_schema_errors() -> None:
    found = parse_draft('{"instruction": "x"}')
    assert isinstance(found, str) and found.startswith("schema:") and "goal" in found


# --- the committee ----------------------------------------------------------------------------------


def test_committee_one_dissent_accepts(tmp_path: Path) -> None:
    script = {"judge-a": [_judge(1)], "judge-b": [_judge(1)], "judge-c": [_judge(0, "too easy")]}
    with ScriptedServer(script) as server:
        judges = [server.settings(m) for m in script]
        paths = RunPaths(tmp_path)
        stats = run_phase1(_config(n=2, recombine=0.0, judges=judges), paths)
    assert stats.accepted == 2 and stats.stages["committee"].passed == stats.stages["committee"].reached
    for task in read_models(paths.accepted, Task):
        votes = task.meta["provenance"]["votes"]
        assert [v["judge"].split(":")[1] for v in votes] == ["judge-a", "judge-b", "judge-c"]
        assert votes[2]["scores"] == {c: False for c in CRITERIA} and votes[2]["reason"] == "too easy"
    assert stats.prompt_tokens > 0


def _committee_verdict(script: dict[str, list[str]], threshold: float = 0.5) -> Any:
    task = TEST_TASKS[1]
    blueprint = blueprint_of(task)
    session = replay(DOMAIN.tools, DATABASE, task.actions)

    async def review() -> Any:
        clients = [LLMClient(server.settings(m)) for m in script]
        try:
            return await Committee(clients, threshold).review(DOMAIN, blueprint, session, "policy")
        finally:
            for client in clients:
                await client.aclose()

    with ScriptedServer(script) as server:
        verdict = asyncio.run(review())
        prompt = server.prompts(next(iter(script)))[0]
    assert task.instruction in prompt
    return verdict


def test_committee_two_dissents_reject() -> None:
    verdict = _committee_verdict(
        {"a": [_judge(1)], "b": [_judge(0, "wrong order")], "c": [_judge(0, "vague")]}
    )
    assert not verdict.passed and verdict.details["share"] == 0.0
    assert any("2 of 3 judges said no" in r and "wrong order" in r for r in verdict.reasons)


def test_committee_abstaining_judge_is_recorded() -> None:
    verdict = _committee_verdict({"a": [_judge(1)], "b": ["!400"], "c": ["no json here"]})
    assert verdict.passed and set(verdict.details["abstained"]) == {"judge2:b", "judge3:c"}
    errors = [v["error"] for v in verdict.details["votes"]]
    assert (
        errors[0] is None
        and errors[1].startswith("llm error: request")
        and errors[2].startswith("bad answer")
    )
    nobody = _committee_verdict({"a": ["!400"]})
    assert not nobody.passed and nobody.reasons == ["no judge: every judge abstained"]


def test_committee_threshold_counts_criteria() -> None:
    partial = json.dumps({"correctness": 1, "completeness": 1, "satisfaction": 0, "creativity": 0})
    assert _committee_verdict({"a": [partial]}, threshold=0.5).passed
    assert not _committee_verdict({"a": [partial]}, threshold=0.75).passed


# --- recombination ----------------------------------------------------------------------------------


def _task(task_id: str, user_id: str, actions: list[Action], text: str) -> Task:
    goal = Goal(known={}, requests=[Request(text=text, actions=list(range(len(actions))))])
    return Task(
        id=task_id, user_id=user_id, instruction=f"You are {user_id}. {text}", goal=goal, actions=actions
    )


def test_recombination_conflict_is_rejected() -> None:
    (me,) = _train_users_with_pending(1)
    email = DATABASE.table("users")[me]["email"]
    order = _orders(me, "pending")[0]
    head = [
        Action(name="find_user_id_by_email", arguments={"email": email}),
        Action(name="get_user_details", arguments={"user_id": me}),
        Action(name="get_order_details", arguments={"order_id": order}),
    ]
    cancel = _task(
        "a",
        me,
        [
            *head,
            Action(
                name="cancel_pending_order", arguments={"order_id": order, "reason": "ordered by mistake"}
            ),
        ],
        "Cancel it.",
    )
    address = dict(DATABASE.table("orders")[order]["address"], address1="1 New Street")
    modify = _task(
        "b",
        me,
        [*head, Action(name="modify_pending_order_address", arguments={"order_id": order, **address})],
        "Move it.",
    )
    for parent in (cancel, modify):
        assert check_rules(DOMAIN, DATABASE, blueprint_of(parent)).passed
    combined = combine(DOMAIN, [cancel, modify])
    assert [a.name for a in combined.actions].count("find_user_id_by_email") == 1 and len(
        combined.actions
    ) == 5
    assert combined.goal.requests[1].actions == [4] and combined.parents == ["a", "b"]
    check = check_rules(DOMAIN, DATABASE, combined)
    assert not check.passed and check.verdicts[-1].stage == "execution"
    assert forbidden_sequences(DOMAIN, combined.actions)  # the API graph forbids it too
    assert check_rules(DOMAIN, DATABASE, combine(DOMAIN, [modify, cancel])).passed  # the other order is fine


# --- writes that contradict each other ---------------------------------------------------------------


def _execution_reasons(domain: Any, actions: list[Action], user_id: str) -> list[str]:
    database = domain.database()
    task = _task("t", user_id, actions, "Do it.")
    check = check_rules(domain, database, blueprint_of(task))
    (executed,) = [v for v in check.verdicts if v.stage == "execution"]  # format passed
    return executed.reasons


def test_no_op_undone_and_overwritten_writes_are_rejected() -> None:
    (me,) = _train_users_with_pending(1)
    user = DATABASE.table("users")[me]
    order = _orders(me, "pending")[0]
    head = [
        Action(name="find_user_id_by_email", arguments={"email": user["email"]}),
        Action(name="get_user_details", arguments={"user_id": me}),
        Action(name="get_order_details", arguments={"order_id": order}),
    ]
    home = {"user_id": me, **user["address"]}
    moved = {**home, "address1": "1 New Street"}
    order_at = {"order_id": order, **{k: v for k, v in moved.items() if k != "user_id"}}
    order_elsewhere = {**order_at, "address1": "2 Other Road"}
    cases = {
        "no-op write: action 3 (modify_user_address) changes nothing": [("modify_user_address", home)],
        f"undone write: action 4 (modify_user_address) puts users/{me} address back as before action 3": [
            ("modify_user_address", moved),
            ("modify_user_address", home),
        ],
        "overwritten write: action 4 (modify_pending_order_address) replaces every change action 3": [
            ("modify_pending_order_address", order_at),
            ("modify_pending_order_address", order_elsewhere),
        ],
    }
    for reason, writes in cases.items():
        actions = [*head, *(Action(name=name, arguments=args) for name, args in writes)]
        found = _execution_reasons(DOMAIN, actions, me)
        assert len(found) == 1 and found[0].startswith(reason), found
    fine = [("modify_pending_order_address", order_at), ("modify_user_address", moved)]  # two records
    actions = [*head, *(Action(name=name, arguments=args) for name, args in fine)]
    assert _execution_reasons(DOMAIN, actions, me) == []


def test_writes_that_build_on_each_other_are_not_contradictions() -> None:
    """Two travellers added to one profile: the second keeps the first (a record that only grows)."""
    travel = load_domain("travel")
    me = sorted(travel.database().table("users"))[0]
    email = travel.database().table("users")[me]["email"]

    def traveller(first: str, number: str) -> Action:
        person = {"first_name": first, "last_name": "Okafor", "birth_date": "1980-01-02"}
        passport = {"passport_number": number, "passport_country": "Nigeria", "passport_expiry": "2031-01-01"}
        return Action(name="add_traveller", arguments={"user_id": me, **person, **passport})

    actions = [
        Action(name="find_user_id_by_email", arguments={"email": email}),
        Action(name="get_user_details", arguments={"user_id": me}),
        traveller("Ada", "A1234567"),
        traveller("Obi", "B7654321"),
    ]
    assert _execution_reasons(travel, actions, me) == []


def test_recombination_that_repeats_a_write_to_no_effect_is_rejected() -> None:
    """The issue's airline-gen-0-r00001: two parents downgrading one reservation with two cards."""
    airline = load_domain("airline")
    database = airline.database()
    users = database.table("users")
    reservation_id, reservation = next(
        (key, r)
        for key, r in database.table("reservations").items()
        if r["cabin"] == "business"
        and min(f["date"] for f in r["flights"]) > "2024-05-16"
        and sum(m["source"] == "credit_card" for m in users[r["user_id"]]["payment_methods"].values()) > 1
    )
    me = reservation["user_id"]
    cards = [k for k, m in users[me]["payment_methods"].items() if m["source"] == "credit_card"]
    flights = [{"flight_number": f["flight_number"], "date": f["date"]} for f in reservation["flights"]]

    def downgrade(task_id: str, card: str) -> Task:
        change = {
            "reservation_id": reservation_id,
            "cabin": "economy",
            "flights": flights,
            "payment_id": card,
        }
        actions = [
            Action(name="get_user_details", arguments={"user_id": me}),
            Action(name="get_reservation_details", arguments={"reservation_id": reservation_id}),
            Action(name="update_reservation_flights", arguments={**change, "payment_id": card}),
        ]
        return _task(task_id, me, actions, f"Downgrade {reservation_id} to economy.")

    first, second = downgrade("a", cards[0]), downgrade("b", cards[1])
    for parent in (first, second):
        assert check_rules(airline, database, blueprint_of(parent)).passed
    check = check_rules(airline, database, combine(airline, [first, second]))
    assert not check.passed and check.verdicts[-1].stage == "execution"
    assert check.verdicts[-1].reasons == [
        "no-op write: action 3 (update_reservation_flights) changes nothing"
    ]


# --- decontamination --------------------------------------------------------------------------------


class CopyingProposer:
    """Proposes a test task first (contamination), then a train task."""

    model: str | None = "copier"

    def __init__(self, tasks: list[Task]):
        self.tasks = deque(tasks)

    async def propose(
        self, context: Any, feedback: list[str], rng: random.Random
    ) -> Blueprint | ProposalError:
        return blueprint_of(self.tasks.popleft(), source="llm", model=self.model)


def test_decontamination_removes_a_copied_test_task(tmp_path: Path) -> None:
    leaked, clean = TEST_TASKS[3], DOMAIN.tasks("train")[0]
    paths = RunPaths(tmp_path)
    stats = run_phase1(_config(n=1, recombine=0.0), paths, proposer=CopyingProposer([leaked, clean]))
    assert (
        stats.contaminated_removed == 1
        and stats.accepted == 1
        and stats.decontaminated_against == {"test": 115, "evolving": 45}
    )
    (removed,) = read_models(paths.removed, RemovedRecord)
    assert removed.reason == "contaminated" and removed.overlaps == leaked.id and removed.split == "test"
    (kept,) = read_models(paths.accepted, Task)
    assert kept.actions == clean.actions
    assert [r.outcome for r in _rows(paths)] == ["contaminated", "accepted"]


def test_overlap_by_user_record_and_tool() -> None:
    decontaminator = Decontaminator(DOMAIN, {"test": TEST_TASKS})
    test_task = next(t for t in TEST_TASKS if footprint(DOMAIN, t).records)
    variant = test_task.model_copy(update={"id": "x", "outputs": [*test_task.outputs, "extra"]})
    found = decontaminator.overlap(variant)
    assert found is not None and found.task_id == test_task.id and "shares user" in found.detail
    assert decontaminator.overlap(variant.model_copy(update={"user_id": "someone_else"})) is None


# --- context --------------------------------------------------------------------------------------


def test_context_centres_on_writes() -> None:
    sampler = ContextSampler(DOMAIN, DATABASE, DOMAIN.tasks("train"))
    user = sorted(DATABASE.table("users"))[7]
    context = sampler.sample(random.Random(3), user)
    assert context.write_tools and all(w[-1] in context.write_tools for w in context.walks)
    assert context.rows["users"] == {user: thaw(DATABASE.table("users")[user])}
    assert set(context.rows.get("orders", {})) <= set(DATABASE.table("users")[user]["orders"])
    titles = {s.title for s in split_policy(DOMAIN.policy.text)}
    assert context.policy and {s.title for s in context.policy} <= titles
    assert len(context.examples) == 2 and 35 <= len(PERSONAS) <= 45
    assert sampler.sample(random.Random(3), user).summary() == context.summary()


# --- evolving goals -------------------------------------------------------------------------------


def test_offline_run_makes_every_kind_of_evolving_task(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    stats = run_phase1(_config(n=24, evolving=1.0, recombine=0.25), paths)
    assert stats.accepted == 24
    tasks = list(read_models(paths.accepted, Task))
    kinds = {r.twist.kind for t in tasks for r in t.effective_goal().requests if r.twist is not None}
    assert kinds == set(TWIST_KINDS)
    for task in tasks:  # every accepted task, recombined ones too, passes the rules again
        assert check_rules(DOMAIN, DATABASE, blueprint_of(task)).passed, task.id
        asked = task.meta["provenance"]["context"]
        assert asked is None or asked["twist"] in TWIST_KINDS
    assert any(t.meta["source"] == "recombined" and t.effective_goal().evolving for t in tasks)


def _change_of_mind_json(user_id: str, order_id: str, abandoned_reason: str) -> str:
    """A blueprint answer whose customer first asks to cancel for one reason, then for another."""
    data = json.loads(_cancel_json(user_id, order_id))
    data["actions"][3]["arguments"]["reason"] = "ordered by mistake"
    data["goal"]["requests"][0].update(
        actions=[0, 1, 2],
        twist={
            "kind": "change_of_mind",
            "when": "confirm",
            "text": "Wait, the reason is that I ordered it by mistake.",
            "actions": [3],
            "abandoned": [
                {
                    "name": "cancel_pending_order",
                    "arguments": {"order_id": order_id, "reason": abandoned_reason},
                }
            ],
        },
    )
    return json.dumps(data)


def test_an_llm_blueprint_with_a_twist_is_checked_and_fixed_after_feedback(tmp_path: Path) -> None:
    (me,) = _train_users_with_pending(1)
    order = _orders(me, "pending")[0]
    bad = _change_of_mind_json(me, order, "ordered by mistake")  # abandons the very write it makes
    good = _change_of_mind_json(me, order, "no longer needed")
    with ScriptedServer({"proposer": [bad, good]}) as server:
        paths = RunPaths(tmp_path)
        config = _config(n=1, recombine=0.0, evolving=1.0, proposer=server.settings("proposer"))
        stats = run_phase1(config, paths)
        prompts = server.prompts("proposer")
    assert all("## The goal evolves" in p for p in prompts)
    first, second = _rows(paths)
    assert first.outcome == "retry" and first.verdicts[-1].stage == "execution"
    assert any("among the gold actions" in r for r in first.verdicts[-1].reasons)
    assert stats.rejections == {"execution": {"twist": 1}}
    assert second.outcome == "accepted"
    (task,) = read_models(paths.accepted, Task)
    (request,) = task.effective_goal().requests
    assert request.twist is not None and request.twist.abandoned[0].arguments["reason"] == "no longer needed"


def test_the_draft_schema_reads_a_twist() -> None:
    (me,) = _train_users_with_pending(1)
    draft = parse_draft(_change_of_mind_json(me, _orders(me, "pending")[0], "no longer needed"))
    assert not isinstance(draft, str)
    twist = draft.goal.requests[0].twist
    assert twist is not None and (twist.kind, twist.when, twist.actions) == ("change_of_mind", "confirm", [3])
    broken = json.loads(_change_of_mind_json(me, _orders(me, "pending")[0], "no longer needed"))
    broken["goal"]["requests"][0]["twist"]["kind"] = "mood_swing"
    assert str(parse_draft(json.dumps(broken))).startswith("schema: goal.requests.0.twist.kind")


def test_the_template_proposer_rewords_lead_ins_and_keeps_the_facts() -> None:
    text = "For my order #W2390428, I'd like to exchange the lamp. Please use my Visa card ending in 4321."
    variants = {reword(text, random.Random(seed)) for seed in range(40)}
    assert reword(text, random.Random(3)) == reword(text, random.Random(3)) and len(variants) > 10
    for variant in variants:
        assert all(fact in variant for fact in ("#W2390428", "exchange the lamp", "Visa card ending in 4321"))


def test_steering_builds_tasks_on_the_asked_writes() -> None:
    """The template proposer's steering: tasks built inside it use the asked write far more often,
    and they are built and checked exactly as the others (every one valid)."""
    from apigen_gym.domains.airline.sampler import build_task
    from apigen_gym.kit.sampling import problems, steering

    domain = load_domain("airline")
    database = domain.database()
    users = sorted(database.table("users"))[:40]

    def share(steered: bool) -> float:
        rng, hits, built = random.Random(5), 0, 0
        for user in users:
            if steered:
                with steering(("update_reservation_baggages",)):
                    task = build_task(database, rng, user)
            else:
                task = build_task(database, rng, user)
            if task is not None:
                built += 1
                hits += any(a.name == "update_reservation_baggages" for a in task.actions)
                assert not problems(domain, database, task)
        return hits / built

    assert share(steered=True) > 2 * share(steered=False) and share(steered=True) > 0.5
