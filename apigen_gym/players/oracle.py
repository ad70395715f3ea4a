"""Offline agents: the oracle (plays the gold actions with a proper dialogue) and a random agent.

The oracle's script follows the task's goal: identify the user, then per request read, describe and
confirm each write, refuse what the policy forbids, report the required outputs its calls found
(before the user asks the next thing; whatever is left at the end), ask what else. A
request that evolves gets its moment (the confirmation of the first wish, or the cue said), then the
actions serving what the user wants from then on. Its wording comes from seeded paraphrase banks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apigen_gym.core.reward import output_found
from apigen_gym.core.task import IDENTITY_TOOLS, Action, Task, Twist
from apigen_gym.core.tools import ToolKind, ToolSet
from apigen_gym.core.user import STOP
from apigen_gym.players.agent import Agent
from apigen_gym.players.wording import Phrasing, seed_for

if TYPE_CHECKING:
    from apigen_gym.core.env import ApigenEnv

ASK_IDENTITY = (
    "I'd be glad to help. First I need to identify you: could you tell me your email address, "
    "or your first name and last name with your zip code or date of birth?",
    "Happy to help with that. To find your account, may I have your email address, or your first and "
    "last name with your zip code or date of birth?",
    "Sure. Before we start, I need to verify your identity: please give me your email address, or your "
    "full name together with your zip code or date of birth.",
    "Of course. Could you first share the email address on your account, or your first name, last name "
    "and zip code or date of birth, so I can look you up?",
    "I can help you with that. Let me first locate your account: what is your email address? Your first "
    "and last name plus your zip code or date of birth work too.",
    "Thanks for reaching out. To get started, please tell me the email address on your account, or your "
    "name with your zip code or date of birth.",
)
"""Asking who the user is (every wording names the email and the name, so the user answers alike)."""
CONFIRM = (
    "I am about to {what}. Do you confirm (yes/no)?",
    "Before I go ahead, here is what I will do: {what}. Shall I proceed (yes/no)?",
    "To confirm, I'm going to {what}. Is that correct? Please answer yes or no.",
    "Here is the change I'll make: {what}. Would you like me to proceed?",
    "I'm ready to {what}. Do you want me to go ahead (yes/no)?",
    "Let me check with you first. I will {what}. Is it OK to proceed?",
    "Please review: I'm about to {what}. Shall I go ahead?",
)
ANSWER = (
    "It comes to {cue}.",
    "I've checked: it is {cue}.",
    "Here is what I found: {cue}.",
    "According to our records, it is {cue}.",
    "The figure is {cue}.",
)
"""Saying a twist's cue (the answer or the figure the user reacts to)."""
WHAT_ELSE = (
    "Is there anything else I can help you with?",
    "Can I help you with anything else?",
    "Is there anything else you need today?",
    "What else can I do for you?",
    "Anything else I can help you with today?",
    "Is there something else I can do for you?",
    "Do you need help with anything else?",
)
REPORT = (
    "Here is what you asked about: {outputs}.",
    "Here's the information you asked for: {outputs}.",
    "To answer your question: {outputs}.",
    "I've looked that up for you: {outputs}.",
    "Here are the details you wanted: {outputs}.",
)
REFUSE = (
    "I'm sorry, but I can't do that: {why}",
    "Unfortunately I can't help with that: {why}",
    "I'm afraid that isn't possible: {why}",
    "I'm sorry, I'm not able to do this: {why}",
    "Unfortunately that is not allowed: {why}",
)
TRANSFER_NOTICE = (
    "I'm unable to handle this request with the tools I have, so I am transferring you to a human agent.",
    "I can't handle this request with the tools I have, so I'm transferring you to a human agent.",
    "This request is out of my scope, so I'm transferring you to a human agent.",
    "I'm not able to handle this with my tools; let me transfer you to a human agent who can help.",
)
"""Announcing a transfer (each says why: the policy allows transfers only for what is out of scope)."""
GOODBYE = (
    f"Thank you for contacting us. Goodbye! {STOP}",
    f"Thanks for reaching out, have a great day! {STOP}",
    f"Glad I could help. Goodbye! {STOP}",
)


def _words(value: Any) -> str:
    """An argument value as words: strings as they are, lists joined, records as 'key value' pairs."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        items = [_words(v) for v in value]
        if len(items) < 2:
            return items[0] if items else "none"
        return f"{', '.join(items[:-1])} and {items[-1]}"
    if isinstance(value, dict):
        pairs = ", ".join(f"{k.replace('_', ' ')} {_words(v)}" for k, v in value.items())
        return f"({pairs})"
    return str(value) if value is not None else "none"


def describe(action: Action) -> str:
    """A readable description of a tool call, for confirmations: every argument value, named."""
    args = "; ".join(f"{k.replace('_', ' ')} {_words(v)}" for k, v in action.arguments.items())
    return f"{action.name.replace('_', ' ')} ({args})" if args else action.name.replace("_", " ")


def call(action: Action) -> str:
    return json.dumps({"name": action.name, "arguments": action.arguments})


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Report:
    """The end of a request (or a transfer): tell the user the required outputs the calls so far
    found, then say ``then``. ``final``: every output not said yet, found or not."""

    then: str
    final: bool = False


Move = Say | Action | Report
"""One step of the oracle's script."""


def report_text(
    move: Report, outputs: Sequence[str], seen: Sequence[str], said: Sequence[str], words: Phrasing
) -> str:
    """What a :class:`Report` says, given the tool outputs ``seen`` and what the agent has ``said``."""
    due = [o for o in outputs if not output_found(o, said) and (move.final or output_found(o, seen))]
    return f"{words.say(REPORT, outputs='; '.join(due))} {move.then}" if due else move.then


class _Script:
    """The oracle's moves as they are planned, and the gold actions already played."""

    def __init__(self, task: Task, tools: ToolSet, phrasing: Phrasing):
        self.task = task
        self.tools = tools
        self.words = phrasing
        self.moves: list[Move] = []
        self.played: set[int] = set()

    def confirm(self, action: Action) -> str:
        return self.words.say(CONFIRM, what=describe(action))

    def play(self, indices: list[int]) -> None:
        """The gold actions at ``indices`` not played yet: a write after its confirmation, a transfer
        after the report and the notice."""
        for index in indices:
            if index in self.played:
                continue
            self.played.add(index)
            action = self.task.actions[index]
            tool = self.tools.get(action.name)
            kind = tool.kind if tool is not None else ToolKind.READ
            if kind is ToolKind.WRITE:
                self.moves.append(Say(self.confirm(action)))
            elif kind is ToolKind.TERMINAL:
                self.moves.append(Report(self.words.pick(TRANSFER_NOTICE), final=True))
            self.moves.append(action)

    def moment(self, twist: Twist) -> None:
        """What brings the twist's moment: the first wish to confirm, or the cue said (the figure first)."""
        first = twist.abandoned[0] if twist.abandoned else None
        if twist.when == "mention" and twist.cue:
            text = self.words.say(ANSWER, cue=twist.cue)
            if twist.kind == "change_of_mind" and first is not None:
                text = f"{text} {self.confirm(first)}"
            self.moves.append(Say(text))
        elif first is not None:
            self.moves.append(Say(self.confirm(first)))


def plan_oracle_moves(task: Task, tools: ToolSet, phrasing: Phrasing | None = None) -> list[Move]:
    """The oracle's script: identify, then per request read, confirm and write, refuse, and report what
    the request asked about before the next is asked (everything left at the end, or at a transfer)."""
    goal = task.effective_goal()
    script = _Script(task, tools, phrasing or Phrasing())
    if task.actions and task.actions[0].name in IDENTITY_TOOLS:
        script.moves.append(Say(script.words.pick(ASK_IDENTITY)))
        for index, action in enumerate(task.actions):
            if action.name not in IDENTITY_TOOLS:
                break
            script.moves.append(action)
            script.played.add(index)
    for number, request in enumerate(goal.requests):
        script.play(request.actions)
        if request.twist is not None:
            script.moment(request.twist)
            script.play(request.twist.actions)
        if request.refuse:
            script.moves.append(Say(script.words.say(REFUSE, why=request.refuse)))
        last = number == len(goal.requests) - 1
        script.moves.append(Report(script.words.pick(WHAT_ELSE), final=last))
    return script.moves


class OracleScript:
    """The oracle's moves for one task, one at a time: :meth:`next` takes the observation of the move
    before (a tool's output is what a report draws on) and gives a :class:`Say` (reports worded) or an
    :class:`~apigen_gym.core.task.Action`, then ``None`` when the script is done."""

    def __init__(self, task: Task, tools: ToolSet, phrasing: Phrasing | None = None):
        self.words = phrasing or Phrasing()
        self._moves = plan_oracle_moves(task, tools, self.words)
        self._moves.reverse()
        self._outputs = list(task.outputs)
        self._seen: list[str] = []
        self._said: list[str] = []
        self._called = False

    def next(self, observation: str | None = None) -> Say | Action | None:
        if self._called and observation is not None:
            self._seen.append(observation)  # the output of the call made last
        move = self._moves.pop() if self._moves else None
        self._called = isinstance(move, Action)
        if move is None or isinstance(move, Action):
            return move
        if isinstance(move, Report):
            move = Say(report_text(move, self._outputs, self._seen, self._said, self.words))
        self._said.append(move.text)
        return move


class OracleAgent(Agent):
    """Plays a task's gold actions with a proper dialogue: identifies, confirms writes, answers each
    request once its calls are made, ends.

    ``seed``: draws its wording from the paraphrase banks (per task); without one it uses the first.
    """

    name = "oracle"

    def __init__(self, tools: ToolSet, seed: int | None = None):
        self.tools = tools
        self.seed = seed
        self._script: OracleScript | None = None
        self._goodbye = GOODBYE[0]

    def reset(self, info: dict[str, Any], task: Task | None = None, env: ApigenEnv | None = None) -> None:
        if task is None:
            raise ValueError("the oracle agent needs the task")
        phrasing = Phrasing(seed_for(self.seed, task))
        self._goodbye = phrasing.pick(GOODBYE)
        self._script = OracleScript(task, self.tools, phrasing)

    def act(self, observation: str) -> Any:
        move = self._script.next(observation) if self._script is not None else None
        if move is None:
            return self._goodbye
        return move.text if isinstance(move, Say) else call(move)
