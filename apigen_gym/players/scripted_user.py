"""The scripted user: plays a task's structured goal with no LLM, deterministic and offline.

It opens with the first request, answers identity questions from the facts it knows, says yes to
confirmation questions, and reveals the next request when the agent asks what else it can do.
"""

from __future__ import annotations

import re

from apigen_gym.core.task import Goal, Task
from apigen_gym.core.user import STOP, UserSimulator

_ASKS_CONFIRMATION = re.compile(r"\b(confirm|yes/no|yes or no|shall i|should i|proceed|go ahead)\b", re.I)
_ASKS_IDENTITY = re.compile(
    r"\b(e-?mail|zip|postal code|your name|first name|last name|identity|authenticate)\b", re.I
)
_DECLINES = re.compile(r"\b(sorry|can't|cannot|unable|not able|not possible|not allowed)\b", re.I)
_ASKS_WHAT_ELSE = re.compile(r"\b(anything else|something else|other requests?)\b", re.I)


class ScriptedUser(UserSimulator):
    """Deterministic, offline user driven by a task's :class:`Goal`."""

    name = "scripted"

    def __init__(self) -> None:
        self._goal = Goal(requests=[])
        self._current = 0

    def start(self, task: Task, seed: int | None = None) -> str:
        self._goal = task.effective_goal()
        self._current = 0
        if not self._goal.requests:
            return f"Hi. {STOP}"
        return f"Hi! {self._goal.requests[0].text}"

    def respond(self, message: str) -> str:
        if _ASKS_CONFIRMATION.search(message):
            return "Yes, please go ahead."
        if _ASKS_IDENTITY.search(message) and self._identity(message):
            return self._identity(message)
        if _ASKS_WHAT_ELSE.search(message):
            self._current += 1
            if self._current < len(self._goal.requests):
                return self._goal.requests[self._current].text
            return f"No, that's all. Thank you! {STOP}"
        if _DECLINES.search(message):
            return "I see. I understand."
        if self._current < len(self._goal.requests):
            return f"Sorry, I don't follow. What I need is this: {self._goal.requests[self._current].text}"
        return f"I have nothing else to ask. {STOP}"

    def _identity(self, message: str) -> str:
        """The identifying facts the agent asked for: the email, else the name with a zip code or a
        birth date, else a user id; empty when the user knows none."""
        known = self._goal.known
        by_name = "first_name" in known and "last_name" in known
        wants_email = re.search(r"e-?mail", message, re.I) is not None
        if "email" in known and (wants_email or not by_name):
            return f"My email is {known['email']}."
        if by_name:
            details = [f"{label} {known[key]}" for key, label in _NAME_DETAILS if key in known]
            return (
                f"I'm {known['first_name']} {known['last_name']}" + "".join(f", {d}" for d in details) + "."
            )
        if "user_id" in known:
            return f"My user id is {known['user_id']}."
        return ""


_NAME_DETAILS = (("zip", "zip code"), ("birth_date", "born on"))
"""Facts that go with a name to identify someone, and how the user says them."""
