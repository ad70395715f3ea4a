"""Evolving goals, the parts every domain shares: the user's words at a twist and the checks on twists.

A twist (:class:`~apigen_gym.core.task.Twist`) changes a request at a defined moment. The checks here
make it verifiable: the moment can happen (a cue the agent can say is in a tool output before it),
the gold actions serve the final wish (every write after the moment), and the abandoned writes are
absent from the gold actions yet would have run, changing the final state, so the reward catches
an agent that acts on the first words without waiting.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from apigen_gym.core.database import Database
from apigen_gym.core.domain import Domain
from apigen_gym.core.reward import differing_records, output_found
from apigen_gym.core.session import Session, replay
from apigen_gym.core.task import Action, Goal, Twist
from apigen_gym.core.tools import ToolKind

CHANGE_LEADS = (
    "Actually, wait: I've changed my mind, I don't want that after all.",
    "Hold on, on second thought I'd rather not do that.",
    "Sorry, I've just changed my mind about that.",
    "Wait, let's not do that after all.",
)
"""How a user who changes their mind drops the first wish (the new one follows)."""
BELOW = (
    "Thanks. Since that is below {limit}, here is what I'd like next:",
    "OK, that's under {limit}, so:",
)
NOT_BELOW = (
    "Thanks. Since that is not below {limit}, here is what I'd like next:",
    "I see, that's {limit} or more, so:",
)
"""How a user follows up on an answer, by whether it is below the limit the instruction names."""


def moment_words(when: str, cue: str | None) -> str:
    """The instruction's words for a twist's moment: 'When the agent asks you to confirm it'..."""
    if when == "mention":
        return f"When the agent tells you that it comes to {cue}"
    return "When the agent asks you to confirm it"


def number_of(text: str) -> float | None:
    """The value of an output such as '412.5' or '3', else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def limit_for(value: float, below: bool, rng: random.Random) -> float | None:
    """A round limit that ``value`` is below (``below``) or not: 450 or 400 for 412.5, 5 or 2 for 3."""
    step = max(1.0, 10 ** math.floor(math.log10(value)) / 2) if value >= 1 else 0.5
    if below:
        return (math.floor(value / step) + rng.choice((1, 2))) * step
    limit = math.floor(value / step) * step - rng.choice((0, 0, 1)) * step
    return limit if 0 < limit <= value else None


def limit_text(limit: float) -> str:
    """'450', '2.5'."""
    return f"{limit:.2f}".rstrip("0").rstrip(".")


def follow_up_words(below: bool, limit: float, rng: random.Random) -> str:
    return rng.choice(BELOW if below else NOT_BELOW).format(limit=limit_text(limit))


# --- checks ---------------------------------------------------------------------------------------


def said_in(cue: str, outputs: Sequence[str]) -> bool:
    """Whether ``cue`` can be read in one of ``outputs`` (numbers as numbers, words on word boundaries)."""
    return output_found(cue, outputs, "strict")


def _moment(request_actions: Sequence[int], twist: Twist) -> int:
    """The index of the gold action the twist's moment comes just before."""
    return min(twist.actions, default=max(request_actions, default=-1) + 1)


def _twist_shape(
    twist: Twist, actions: Sequence[int], size: int, writes: set[str], gold: Sequence[Action]
) -> list[str]:
    found = []
    bad = [i for i in twist.actions if not 0 <= i < size]
    if bad:
        return [f"points at actions {bad}, but there are {size} actions"]
    if set(twist.actions) & set(actions):
        found.append("the same action serves the request before and after the moment")
    if actions and twist.actions and min(twist.actions) <= max(actions):
        found.append("the actions after the moment must come after the request's own actions")
    if not any(gold[i].name in writes for i in twist.actions):
        found.append("the final wish makes no write")
    if any(gold[i].name in writes for i in actions):
        found.append("the request makes a write before the moment (the first wish is never carried out)")
    if twist.kind != "follow_up" and not twist.abandoned:
        found.append(f"a {twist.kind} request abandons no write")
    if twist.when == "mention" and not (twist.cue or "").strip():
        found.append("a moment on 'mention' needs the cue the agent says")
    for action in twist.abandoned:
        if action.name not in writes:
            found.append(f"abandoned action {action.name} is not a write")
        elif action in gold:
            found.append(f"abandoned write {action.name} is among the gold actions")
    return found


def twist_problems(
    domain: Domain, database: Database, goal: Goal, actions: Sequence[Action], session: Session | None = None
) -> list[str]:
    """Why the twists of ``goal`` are not verifiable with these gold ``actions`` (empty when they are).

    ``session``: the gold actions already replayed on ``database`` (replayed here when not given).
    """
    writes = {t.name for t in domain.tools.of_kind(ToolKind.WRITE)}
    found: list[str] = []
    gold_session = session
    for number, request in enumerate(goal.requests):
        twist = request.twist
        if twist is None:
            continue
        shape = _twist_shape(twist, request.actions, len(actions), writes, actions)
        found += [f"twist of request {number}: {problem}" for problem in shape]
        if shape:
            continue
        gold_session = gold_session or replay(domain.tools, database, actions)
        at = _moment(request.actions, twist)
        if twist.when == "mention" and twist.cue:
            before = [s.output for s in gold_session.trace.steps[:at]]
            if not said_in(twist.cue, before):
                found.append(
                    f"twist of request {number}: the cue {twist.cue!r} is in no tool output before the moment"
                )
        if twist.abandoned:
            found += [
                f"twist of request {number}: {problem}"
                for problem in _abandoned_problems(domain, database, actions, at, twist, gold_session)
            ]
    return found


def _abandoned_problems(
    domain: Domain, database: Database, actions: Sequence[Action], at: int, twist: Twist, gold: Session
) -> list[str]:
    """The abandoned writes, made at the moment, must run and must change the final state."""
    trial = replay(domain.tools, database, [*actions[:at], *twist.abandoned, *actions[at:]])
    inserted = trial.trace.steps[at : at + len(twist.abandoned)]
    failed = [s for s in inserted if not s.ok]
    if failed:
        return [f"abandoned write {failed[0].name} would fail at the moment: {failed[0].output[:160]}"]
    if not differing_records(trial.diff(), gold.diff()):
        return [
            "making the abandoned writes too leaves the same final state: the reward could not catch them"
        ]
    return []
