"""Rules every conversational domain shares, as factories a domain instantiates with its tool names."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

from apigen_gym.core.policy import Finding, Rule, Step, Trace, rule

_YES = re.compile(r"\b(yes|yeah|yep|confirm(ed)?|go ahead|proceed|sure)\b", re.IGNORECASE)
_NO = re.compile(r"\b(no|not|don't|do not|stop|cancel that|wait)\b", re.IGNORECASE)


def is_affirmative(text: str | None) -> bool:
    """Whether a user message explicitly agrees (says yes without a no)."""
    return bool(text) and bool(_YES.search(text or "")) and not _NO.search(text or "")


# Rules every conversational domain shares ------------------------------------------------------


def _argument_texts(arguments: dict[str, Any]) -> list[str]:
    """The non-empty string values among a call's arguments (list items included)."""
    values: list[Any] = []
    for value in arguments.values():
        values.extend(value if isinstance(value, list) else [value])
    return [v for v in values if isinstance(v, str) and v.strip()]


def confirmation_rule(rule_id: str, write_tools: Collection[str]) -> Rule:
    """The shared rule: the agent describes each write, then the user's last message says yes."""

    @rule(rule_id, needs_dialogue=True)
    def confirm_before_write(trace: Trace) -> Iterator[Finding]:
        """Before every write, describe the change (naming what it acts on) and get an explicit yes."""
        for step in trace.calls(*write_tools):
            if not is_affirmative(trace.last_message_before(step, "user")):
                yield step, f"{step.name} was called without the user's explicit yes"
                continue
            said = [text for text in trace.messages_before(step, "assistant") if text.strip()]
            names = _argument_texts(step.arguments)
            if not said or (names and not any(name in said[-1] for name in names)):
                yield step, f"{step.name} was not described to the user before asking for the yes"

    return confirm_before_write


def one_tool_call_per_turn_rule(rule_id: str) -> Rule:
    """The shared rule: one tool call per assistant message, and no text beside it."""

    @rule(rule_id, needs_dialogue=True)
    def one_call_per_turn(trace: Trace) -> Iterator[Finding]:
        """Make at most one tool call per turn, and do not reply to the user in that turn."""
        for msg_index, message in enumerate(trace.messages or []):
            calls = message.get("tool_calls") or []
            if message.get("role") != "assistant" or not calls:
                continue
            step = next((s for s in trace.steps if s.message_index == msg_index), None)
            if len(calls) > 1:
                yield step, f"{len(calls)} tool calls in one turn"
            elif str(message.get("content") or "").strip():
                yield step, "talked to the user and called a tool in the same turn"

    return one_call_per_turn


def identified_user(step: Step, identify_tools: Collection[str]) -> str | None:
    """The user id a successful identification step returned, else ``None``."""
    return step.output.strip() if step.name in identify_tools and step.ok else None


def steps_with_user(trace: Trace, identify_tools: Collection[str]) -> Iterator[tuple[Step, str | None]]:
    """Each step with the first user identified before it (``None`` while nobody is)."""
    user: str | None = None
    for step in trace.steps:
        yield step, user
        user = user or identified_user(step, identify_tools)


def authentication_rule(
    rule_id: str, identify_tools: Collection[str], user_specific: Collection[str]
) -> Rule:
    """The shared rule: no user-specific tool before a successful identification."""

    @rule(rule_id)
    def authenticate_first(trace: Trace) -> Iterator[Finding]:
        """Authenticate the user before any user-specific action."""
        for step, user in steps_with_user(trace, identify_tools):
            if step.name in user_specific and user is None:
                yield step, f"{step.name} was called before the user was authenticated"

    return authenticate_first


def single_user_rule(
    rule_id: str, identify_tools: Collection[str], owner: Callable[[Step], str | None]
) -> Rule:
    """The shared rule: once a user is identified, no step concerns another user.

    ``owner(step)`` names the user whose data a step reads or changes (``None`` when unknown).
    """

    @rule(rule_id)
    def single_user(trace: Trace) -> Iterator[Finding]:
        """Serve a single user per conversation: never identify, read or change another user's data."""
        for step, user in steps_with_user(trace, identify_tools):
            if user is None:
                continue
            other = identified_user(step, identify_tools) or owner(step)
            if other is not None and other != user:
                yield step, f"{step.name} concerns user {other}, but the conversation is with {user}"

    return single_user


_ASKS_FOR_PERSON = re.compile(
    r"\b(human|(real|live|actual) person|representative|supervisor|manager"
    r"|(live|real|another|other|different) agent"
    r"|(speak|talk|chat)(ing)? (to|with) (an? |the )?agent)s?\b",
    re.IGNORECASE,
)
_CANNOT_HANDLE = re.compile(
    r"\b(can ?not|can't|unable to|not able to)\b[^.!?\n]*\b(help|handle|do|assist|process)\b"
    r"|\b(out of|outside( of)?|beyond) (my|the) (scope|tools|capabilities)\b",
    re.IGNORECASE,
)


def transfer_rule(rule_id: str, transfer_tool: str = "transfer_to_human_agents") -> Rule:
    """The shared rule: transfer to a human only for requests shown to be out of scope."""

    @rule(rule_id, needs_dialogue=True)
    def transfer_only_out_of_scope(trace: Trace) -> Iterator[Finding]:
        """Transfer to a human only for requests the tools cannot handle.

        Heuristic: a transfer is fine when an earlier user message asks for a human (real person,
        representative, supervisor, manager, live agent...) or an earlier agent message said the
        request cannot be handled; otherwise it is a violation.
        """
        for step in trace.calls(transfer_tool):
            asked = any(_ASKS_FOR_PERSON.search(m) for m in trace.messages_before(step, "user"))
            refused = any(_CANNOT_HANDLE.search(m) for m in trace.messages_before(step, "assistant"))
            if not (asked or refused):
                yield step, "transferred to a human although the request was not shown to be out of scope"

    return transfer_only_out_of_scope
