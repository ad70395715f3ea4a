"""Validators, cheapest first: format, execution on a fork, policy rules, then the LLM review committee.

Each returns a :class:`Verdict` whose reasons read ``"<kind>: <detail>"`` (the kind is what stats
count); :func:`feedback_summary` turns the failures into the text a proposer gets back.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from apigen_gym.core.database import Database, thaw
from apigen_gym.core.domain import Domain
from apigen_gym.core.policy import Step, Trace
from apigen_gym.core.session import Session, replay
from apigen_gym.core.task import IDENTITY_TOOLS, Action
from apigen_gym.core.tools import ToolKind
from apigen_gym.generation.blueprint import CRITERIA, Blueprint, ProposalError, Verdict, Vote
from apigen_gym.generation.budget import (
    DEFAULT_PROMPT_BUDGET,
    PromptTooLong,
    clipped,
    fitted,
    ids_in,
    trimmed,
)
from apigen_gym.generation.proposers import CUT_ANSWER, limited_complete, llm_failure, schema_errors
from apigen_gym.kit.evolving import twist_problems
from apigen_gym.kit.sampling import ungrounded
from apigen_gym.llm.structured import SHORT_TEXT, json_object
from apigen_gym.llm.types import LLMError, Usage

if TYPE_CHECKING:
    from apigen_gym.llm.client import LLMClient

USERS = "users"
RECORD_ARGUMENTS = ("order_id", "reservation_id", "trip_id")
"""Arguments naming the record a write acts on (a write with none acts on its ``user_id``)."""
_NUMBER = re.compile(r"-?\d+")


def write_names(domain: Domain) -> set[str]:
    return {t.name for t in domain.tools.of_kind(ToolKind.WRITE)}


def identity_tools(domain: Domain) -> frozenset[str]:
    """Look-ups that return a user id: the known ones, and API-graph roots that feed a ``user_id``."""
    found = set(IDENTITY_TOOLS)
    if domain.api_graph is not None:
        roots = set(domain.api_graph.roots())
        found.update(
            e.source
            for e in domain.api_graph.edges
            if e.source in roots and e.produces == "user_id" and e.consumes == "user_id"
        )
    return frozenset(found)


def written_records(action: Action, or_user: bool = True) -> list[str]:
    """The records a write names: order / reservation / trip ids, else (``or_user``) the user it changes."""
    found = [str(action.arguments[k]) for k in RECORD_ARGUMENTS if isinstance(action.arguments.get(k), str)]
    user = action.arguments.get("user_id")
    return found or ([str(user)] if or_user and isinstance(user, str) else [])


# --- format -------------------------------------------------------------------------------------


def _argument_problems(domain: Domain, actions: Sequence[Action]) -> list[str]:
    found = []
    for index, action in enumerate(actions):
        tool = domain.tools.get(action.name)
        if tool is None:
            found.append(f"unknown tool: action {index} calls {action.name!r}")
            continue
        try:
            tool.arguments.model_validate(action.arguments)
        except ValidationError as exc:
            found.append(f"bad arguments: action {index} ({action.name}): {schema_errors(exc)}")
    return found


def _goal_problems(domain: Domain, blueprint: Blueprint) -> list[str]:
    found = []
    writes = write_names(domain)
    size = len(blueprint.actions)
    served: set[int] = set()
    if not blueprint.goal.requests:
        found.append("goal: no request")
    for number, request in enumerate(blueprint.goal.requests):
        bad = [i for i in request.served_by if not 0 <= i < size]
        if bad:
            found.append(f"goal: request {number} points at actions {bad}, but there are {size} actions")
        served.update(i for i in request.served_by if 0 <= i < size)
        if request.refuse and any(
            blueprint.actions[i].name in writes for i in request.served_by if 0 <= i < size
        ):
            found.append(f"goal: request {number} must be refused but is served by a write")
        if request.twist is not None:
            found += [
                f"twist: request {number}: abandoned {p.split(': ', 1)[-1]}"
                for p in _argument_problems(domain, request.twist.abandoned)
            ]
    for index, action in enumerate(blueprint.actions):
        if action.name in writes and index not in served:
            found.append(f"goal: write action {index} ({action.name}) serves no request")
    return found


def check_format(domain: Domain, database: Database, proposal: Blueprint | ProposalError) -> Verdict:
    """Schema, known user and tools, arguments that validate, goal indices in range, usable outputs."""
    if isinstance(proposal, ProposalError):
        return Verdict(stage="format", passed=False, reasons=[proposal.reason])
    found = []
    if proposal.user_id not in database.table(USERS):
        found.append(f"unknown user: {proposal.user_id!r} is not in the database")
    if not proposal.instruction.strip():
        found.append("empty instruction: the instruction is blank")
    if not proposal.actions:
        found.append("no actions: a task needs gold actions")
    found += _argument_problems(domain, proposal.actions)
    found += _goal_problems(domain, proposal)
    found += [
        f"bad output: {o!r} is empty or has a comma" for o in proposal.outputs if not o.strip() or "," in o
    ]
    refuses = any(r.refuse for r in proposal.goal.requests)
    if not (any(a.name in write_names(domain) for a in proposal.actions) or proposal.outputs or refuses):
        found.append("unverifiable: no write, no output and no refused request")
    if domain.api_graph is not None and not any(f.startswith("unknown tool") for f in found):
        found += [f"ungrounded: {text}" for text in ungrounded(proposal.actions, domain.api_graph)]
    return Verdict(stage="format", passed=not found, reasons=found)


# --- execution ----------------------------------------------------------------------------------


def _plain(text: str) -> str:
    return text.lower().replace(",", "")


_ABSENT = object()
Changes = dict[tuple[str, str], set[str]]
"""The fields a step changed, by ``(table, key)`` of each record it changed."""


def _changes(step: Step) -> Changes:
    touched = {(t, k) for view in (step.before, step.after) for t, recs in view.diff().items() for k in recs}
    found: Changes = {}
    for table, key in touched:
        old, new = step.before.get(table, key) or {}, step.after.get(table, key) or {}
        fields = {f for f in {*old, *new} if old.get(f, _ABSENT) != new.get(f, _ABSENT)}
        if fields:
            found[(table, key)] = fields
    return found


def _keeps(earlier: Any, later: Any) -> bool:
    """Whether a value still holds what an earlier write put there: a list may have grown since, a
    record gained keys, a number (a balance, a count) moved on."""
    if isinstance(earlier, list) and isinstance(later, list):
        return later[: len(earlier)] == earlier
    if isinstance(earlier, dict) and isinstance(later, dict):
        return all(key in later and _keeps(value, later[key]) for key, value in earlier.items())
    numbers = (int, float)
    if isinstance(earlier, numbers) and isinstance(later, numbers) and not isinstance(earlier, bool):
        return not isinstance(later, bool)
    return bool(later == earlier)


@dataclass(frozen=True)
class _Write:
    """A successful gold write: its step, what it changed, and the records it acts on."""

    step: Step
    changes: Changes
    records: frozenset[str]
    """Keys of the records it names by id (an order, a reservation, a trip) or creates."""
    owner: str | None
    """The user it names, for a write that acts on the user's own record."""

    def acts_with(self, other: _Write, key: str) -> bool:
        """Whether both act on record ``key`` (a user's record counts for the same tool only)."""
        if key in self.records and key in other.records:
            return True
        return self.step.name == other.step.name and key == self.owner == other.owner


def _write(step: Step, action: Action, changes: Changes) -> _Write:
    created = {key for table, key in changes if step.before.get(table, key) is None}
    records = frozenset(written_records(action, or_user=False)) | created
    owner = None if records else next(iter(written_records(action)), None)
    return _Write(step, changes, records, owner)


def _clash(first: _Write, then: _Write, table: str, key: str) -> str | None:
    """How ``then`` contradicts ``first`` on one record: puts a field back, or leaves nothing of it."""
    fields = first.changes[(table, key)]
    start = first.step.before.get(table, key) or {}
    middle, end = first.step.after.get(table, key) or {}, then.step.after.get(table, key) or {}
    what = f"action {then.step.index} ({then.step.name})"
    was = f"action {first.step.index} ({first.step.name})"
    undone = sorted(f for f in fields if end.get(f, _ABSENT) == start.get(f, _ABSENT))
    if undone:
        return f"undone write: {what} puts {table}/{key} {', '.join(undone)} back as before {was}"
    same_tool = then.step.name == first.step.name
    if same_tool and not any(_keeps(middle.get(f, _ABSENT), end.get(f, _ABSENT)) for f in fields):
        return f"overwritten write: {what} replaces every change {was} made to {table}/{key}"
    return None


def write_problems(domain: Domain, steps: Sequence[Step], actions: Sequence[Action]) -> list[str]:
    """Gold writes that contradict each other: one that changes nothing; a later write on a record both
    act on that puts a field back as it was before an earlier one; the same write again on a record,
    leaving nothing of the first one's change. What a write only touches on the side (a seat count, a
    gift card balance) is not compared."""
    writes = write_names(domain)
    done: list[_Write] = []
    found = []
    for step in steps:
        if step.name not in writes or not step.ok:
            continue
        changes = _changes(step)
        if not changes:
            found.append(f"no-op write: action {step.index} ({step.name}) changes nothing")
            continue
        write = _write(step, actions[step.index], changes)
        for earlier in done:
            for table, key in earlier.changes.keys() & changes.keys():
                problem = _clash(earlier, write, table, key) if write.acts_with(earlier, key) else None
                if problem:
                    found.append(problem)
        done.append(write)
    return found


def check_execution(domain: Domain, database: Database, blueprint: Blueprint) -> tuple[Verdict, Session]:
    """Replay the gold actions on a fork: none may fail, none may contradict another (a write that
    changes nothing, or is undone or overwritten by a later one), outputs are grounded, twists are
    verifiable (the final wish's writes after the moment, the abandoned ones absent yet
    consequential); the diff is kept as ``state_change``."""
    session = replay(domain.tools, database, blueprint.actions)
    identify = identity_tools(domain)
    found = []
    for step in session.trace.steps:
        if not step.ok:
            found.append(f"action failed: action {step.index} ({step.name}) returned {step.output[:200]!r}")
        elif step.name in identify and step.output.strip() != blueprint.user_id:
            found.append(
                f"wrong user: action {step.index} identifies {step.output.strip()!r}, "
                f"not the task's user {blueprint.user_id!r}"
            )
    if not found:
        found += write_problems(domain, session.trace.steps, blueprint.actions)
    seen = _plain(" ".join(s.output for s in session.trace.steps))
    for output in blueprint.outputs:
        if not _NUMBER.fullmatch(output.strip()) and _plain(output) not in seen:
            found.append(f"ungrounded output: {output!r} appears in no tool output of the gold actions")
    if not found:  # an evolving goal: the gold actions serve the final wish, the abandoned writes are caught
        found += [
            f"twist: {p}"
            for p in twist_problems(domain, database, blueprint.goal, blueprint.actions, session)
        ]
    details = {"state_change": thaw(session.diff())} if not found else {}
    return Verdict(stage="execution", passed=not found, reasons=found, details=details), session


# --- policy -------------------------------------------------------------------------------------


def forbidden_sequences(domain: Domain, actions: Sequence[Action]) -> list[str]:
    """Writes the API graph forbids after an earlier write on the same record."""
    if domain.api_graph is None:
        return []
    writes = write_names(domain)
    done: dict[str, list[tuple[int, str]]] = {}
    found = []
    for index, action in enumerate(actions):
        if action.name not in writes:
            continue
        for record in written_records(action):
            for earlier_index, earlier in done.get(record, []):
                if (earlier, action.name) in domain.api_graph.forbidden:
                    found.append(
                        f"forbidden sequence: action {index} ({action.name}) after action {earlier_index} "
                        f"({earlier}) on {record}"
                    )
            done.setdefault(record, []).append((index, action.name))
    return found


def check_policy(domain: Domain, trace: Trace, actions: Sequence[Action]) -> Verdict:
    """The domain's rules on the action-only trace (dialogue rules are skipped) and forbidden write pairs."""
    found = [
        f"{v.rule}: {'action ' + str(v.step) + ': ' if v.step is not None else ''}{v.message}"
        for v in domain.policy.check(trace)
    ]
    found += forbidden_sequences(domain, actions)
    return Verdict(stage="policy", passed=not found, reasons=found)


@dataclass
class RuleCheck:
    """The verdicts of the rule-based validators, and the replayed session when execution ran."""

    verdicts: list[Verdict]
    session: Session | None

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    @property
    def state_change(self) -> dict[str, Any]:
        found = next((v for v in self.verdicts if v.stage == "execution"), None)
        return dict(found.details.get("state_change", {})) if found else {}


def check_rules(domain: Domain, database: Database, proposal: Blueprint | ProposalError) -> RuleCheck:
    """Format, then execution, then policy; stops at the first stage that rejects."""
    verdict = check_format(domain, database, proposal)
    if not verdict.passed or isinstance(proposal, ProposalError):
        return RuleCheck([verdict], None)
    executed, session = check_execution(domain, database, proposal)
    if not executed.passed:
        return RuleCheck([verdict, executed], session)
    return RuleCheck([verdict, executed, check_policy(domain, session.trace, proposal.actions)], session)


# --- committee ----------------------------------------------------------------------------------

JUDGE_SYSTEM = """\
You review task blueprints for training customer-service agents of the {domain} domain. A blueprint \
is an instruction for a simulated customer, the gold tool calls a perfect agent makes (already \
executed: you see each call's result), the values the agent must say (outputs) and the resulting \
database change. It already passed automatic checks: every call runs and no coded policy rule fires.

A request may evolve (goal.requests[i].twist): the customer changes their mind, reveals a late fact \
or follows up on an answer at the moment it names. Then the gold calls serve what the customer \
finally wants, and twist.abandoned lists writes they first asked for (or the branch not taken), which \
must not be made.

Score each criterion 1 (yes) or 0 (no):
- correctness: the gold calls do exactly what the instruction asks, with the right records, items, \
options and payment methods, and the policy allows every change.
- completeness: the instruction gives the customer every fact and choice the agent will need, and \
every gold call is motivated by it; the outputs answer what the customer asks.
- satisfaction: a customer with this instruction would be satisfied once these calls are made and \
the outputs are said.
- creativity: the task is realistic and natural, not a trivial or contradictory request.

Answer with one JSON object and nothing else:
{{"correctness": 1, "completeness": 1, "satisfaction": 1, "creativity": 1, "reason": "one short sentence"}}"""


class JudgeAnswer(BaseModel):
    """The JSON a judge must answer with (a ``scores`` object around the criteria is accepted too)."""

    correctness: bool
    completeness: bool
    satisfaction: bool
    creativity: bool
    reason: str = Field("", json_schema_extra=SHORT_TEXT)

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("scores"), dict):
            return {**data["scores"], "reason": data.get("reason", "")}
        return data


@dataclass(frozen=True)
class JudgeDetail:
    """How much of a blueprint the judges' prompt shows; the first of :data:`JUDGE_DETAILS` that fits
    the prompt budget is used."""

    output_chars: int
    """Characters shown of each gold call's result."""
    width: int
    """Entries kept of each list, and of each mapping of like entries, in the changed records."""
    policy_chars: int | None
    """Characters kept of the policy excerpts (``None``: all)."""


JUDGE_DETAILS: tuple[JudgeDetail, ...] = (
    JudgeDetail(output_chars=600, width=6, policy_chars=None),
    JudgeDetail(output_chars=300, width=4, policy_chars=3000),
    JudgeDetail(output_chars=150, width=2, policy_chars=1500),
    JudgeDetail(output_chars=80, width=1, policy_chars=600),
)


def changed_fields(session: Session) -> dict[str, dict[str, Any]]:
    """What the gold calls changed: by table and record, the fields whose value changed (their new
    value), a new record whole, ``None`` for a removed one."""
    steps = session.trace.steps
    if not steps:
        return {}
    start = steps[0].before
    out: dict[str, dict[str, Any]] = {}
    for table, records in thaw(session.diff()).items():
        for key, record in records.items():
            old = thaw(start.get(table, key))
            if record is None or not isinstance(old, dict) or not isinstance(record, dict):
                change = record
            else:
                change = {f: v for f, v in record.items() if old.get(f, _ABSENT) != v}
            out.setdefault(table, {})[key] = change
    return out


def _judge_messages(
    domain: Domain, blueprint: Blueprint, session: Session | None, policy: str, detail: JudgeDetail
) -> list[dict[str, str]]:
    steps = session.trace.steps if session is not None else []
    calls = [
        {
            "call": a.model_dump(mode="json"),
            "result": clipped(steps[i].output if i < len(steps) else "", detail.output_chars),
        }
        for i, a in enumerate(blueprint.actions)
    ]
    keep = ids_in([a.arguments for a in blueprint.actions])
    changes = changed_fields(session) if session is not None else {}
    body = {
        "instruction": blueprint.instruction,
        "goal": blueprint.goal.model_dump(mode="json"),
        "gold_calls": calls,
        "outputs": blueprint.outputs,
        "state_change": {
            table: {key: trimmed(change, detail.width, keep) for key, change in records.items()}
            for table, records in changes.items()
        },
    }
    blueprint_text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    text = (
        f"## Policy\n{clipped(policy, detail.policy_chars)}\n\n## Blueprint (long results and lists "
        f"shortened; state_change holds the fields each record changed)\n{blueprint_text}\n\nScore it now."
    )
    return [
        {"role": "system", "content": JUDGE_SYSTEM.format(domain=domain.name)},
        {"role": "user", "content": text},
    ]


def judge_messages(
    domain: Domain,
    blueprint: Blueprint,
    session: Session | None,
    policy: str,
    budget: int = DEFAULT_PROMPT_BUDGET,
) -> list[dict[str, str]]:
    """The chat messages asking one judge to score ``blueprint``, as detailed as ``budget`` (estimated
    prompt tokens) allows; :class:`PromptTooLong` when even the least detailed one is over it."""
    render = partial(_judge_messages, domain, blueprint, session, policy)
    return fitted(JUDGE_DETAILS, render, budget, "judges' prompt for this blueprint")


class Committee:
    """N judges score each blueprint; majority vote per criterion; accepted when enough criteria pass.

    ``prompt_budget``: the estimated prompt tokens a judge's request may hold (see :func:`judge_messages`).
    """

    def __init__(
        self,
        judges: Sequence[LLMClient],
        threshold: float = 0.5,
        limiter: asyncio.Semaphore | None = None,
        max_tokens: int | None = None,
        prompt_budget: int = DEFAULT_PROMPT_BUDGET,
    ):
        if not judges:
            raise ValueError("a committee needs at least one judge")
        self.judges = list(judges)
        self.threshold = threshold
        self.limiter = limiter
        self.max_tokens = max_tokens
        self.prompt_budget = prompt_budget

    async def _vote(
        self, number: int, judge: LLMClient, messages: list[dict[str, str]]
    ) -> tuple[Vote, Usage, float]:
        name = f"judge{number}:{judge.settings.model}"
        try:
            answer = await limited_complete(
                judge, messages, self.limiter, "judge", JudgeAnswer, max_tokens=self.max_tokens
            )
        except LLMError as exc:
            return Vote(judge=name, error=llm_failure(exc)), Usage(), 0.0
        if answer.cut:
            return Vote(judge=name, error=CUT_ANSWER), answer.usage, answer.cost
        try:
            parsed = JudgeAnswer.model_validate(json_object(answer.content))
        except (ValueError, ValidationError) as exc:
            error = f"bad answer: {str(exc).splitlines()[0][:160]}"
            return Vote(judge=name, error=error), answer.usage, answer.cost
        scores = {c: bool(getattr(parsed, c)) for c in CRITERIA}
        return Vote(judge=name, scores=scores, reason=parsed.reason), answer.usage, answer.cost

    async def review(
        self, domain: Domain, blueprint: Blueprint, session: Session | None, policy: str
    ) -> Verdict:
        """Every judge's vote, the majority per criterion and the decision."""
        try:
            messages = judge_messages(domain, blueprint, session, policy, self.prompt_budget)
        except PromptTooLong as exc:
            return Verdict(stage="committee", passed=False, reasons=[str(exc)])
        results = await asyncio.gather(*(self._vote(n, j, messages) for n, j in enumerate(self.judges, 1)))
        votes = [vote for vote, _, _ in results]
        usage = sum((u for _, u, _ in results), Usage())
        cost = sum(c for _, _, c in results)
        return decide(votes, self.threshold).model_copy(update={"usage": usage, "cost": cost})


def decide(votes: Sequence[Vote], threshold: float) -> Verdict:
    """Majority vote per criterion among the judges who answered (a tie fails); abstentions are recorded."""
    answered = [v for v in votes if not v.abstained]
    details: dict[str, Any] = {
        "votes": [v.model_dump() for v in votes],
        "abstained": [v.judge for v in votes if v.abstained],
    }
    if not answered:
        return Verdict(
            stage="committee", passed=False, reasons=["no judge: every judge abstained"], details=details
        )
    criteria = {c: 2 * sum(v.scores.get(c, False) for v in answered) > len(answered) for c in CRITERIA}
    share = sum(criteria.values()) / len(CRITERIA)
    reasons = []
    for criterion, ok in criteria.items():
        if not ok:
            against = [v for v in answered if not v.scores.get(criterion, False)]
            why = " | ".join(v.reason for v in against if v.reason)
            reasons.append(
                f"{criterion}: {len(against)} of {len(answered)} judges said no"
                + (f" ({why})" if why else "")
            )
    passed = share >= threshold
    details.update(criteria=criteria, share=share)
    return Verdict(stage="committee", passed=passed, reasons=[] if passed else reasons, details=details)


# --- feedback -----------------------------------------------------------------------------------

FEEDBACK_CHARS = 1500


def _call_text(action: Action) -> str:
    return f"{action.name}({json.dumps(action.arguments, ensure_ascii=False)})"


def feedback_summary(proposal: Blueprint | ProposalError, verdicts: Sequence[Verdict]) -> str:
    """What went wrong, for the proposer's next round: the calls it proposed and every failure."""
    failed = [v for v in verdicts if not v.passed]
    lines = [f"Rejected at {v.stage}: {'; '.join(v.reasons)}." for v in failed]
    if isinstance(proposal, Blueprint):
        lines.append("Your gold actions were: " + "; ".join(map(_call_text, proposal.actions)))
    text = " ".join(lines)
    return text if len(text) <= FEEDBACK_CHARS else text[: FEEDBACK_CHARS - 3] + "..."
