"""Tasks: what the user wants (for an LLM and for a scripted user), the gold actions and outputs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

IDENTITY_TOOLS: dict[str, tuple[str, ...]] = {
    "find_user_id_by_email": ("email",),
    "find_user_id_by_name_zip": ("first_name", "last_name", "zip"),
    "find_user_id_by_name_birth_date": ("first_name", "last_name", "birth_date"),
}
"""Identification look-ups whose arguments are facts the user knows about themselves."""


class Action(BaseModel):
    """One tool call: ``{"name": ..., "arguments": {...}}``."""

    model_config = ConfigDict(frozen=True)

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


TwistKind = Literal["change_of_mind", "late_context", "follow_up"]
TWIST_KINDS: tuple[TwistKind, ...] = ("change_of_mind", "late_context", "follow_up")
Moment = Literal["confirm", "mention"]
"""When a twist happens: the agent asks the user to confirm a write, or the agent says the twist's cue."""


class Twist(BaseModel):
    """How a request evolves during the conversation: at a defined moment the user says something new.

    - ``change_of_mind``: the user drops what they first asked for and wants something else;
    - ``late_context``: the user reveals a fact they had not mentioned, which changes the right actions;
    - ``follow_up``: once the agent gives an answer, the user asks for what that answer calls for.

    The gold actions serve the final wish: the request's own ``actions`` are played before the moment
    (reads only, except for a follow-up), ``actions`` here after it. ``abandoned`` are writes that must
    not happen: what the user first asked for, or the branch the answer ruled out. An agent that acts
    on the first words without waiting makes them, and the reward catches it.
    """

    model_config = ConfigDict(frozen=True)

    kind: TwistKind
    when: Moment = "confirm"
    cue: str | None = Field(None, description="for 'mention': what the agent says that brings the moment")
    text: str = Field(description="what the user says at that moment")
    actions: list[int] = Field(
        default_factory=list, description="indices of the gold actions serving the request after the moment"
    )
    abandoned: list[Action] = Field(
        default_factory=list, description="writes that must not be made (the first wish, or the other branch)"
    )
    condition: str | None = Field(None, description="for 'follow_up': what the answer decides, in words")


class Request(BaseModel):
    """One thing the user asks for, in the order the user reveals them."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="what the user says to ask for it")
    actions: list[int] = Field(default_factory=list, description="indices of the gold actions serving it")
    refuse: str | None = Field(None, description="why the policy forbids it, when the agent must decline")
    twist: Twist | None = Field(None, description="how the request evolves mid-conversation, if it does")

    @property
    def served_by(self) -> list[int]:
        """Every gold action serving the request: before the twist's moment, then after it."""
        return [*self.actions, *(self.twist.actions if self.twist else ())]


class Goal(BaseModel):
    """Structured form of the instruction, enough for a scripted user to play the task."""

    model_config = ConfigDict(frozen=True)

    known: dict[str, str] = Field(default_factory=dict, description="facts the user can tell, by name")
    requests: list[Request]

    @property
    def evolving(self) -> bool:
        """Whether a request of the goal changes during the conversation."""
        return any(r.twist is not None for r in self.requests)


class Task(BaseModel):
    """A task: the user's instruction and goal, the gold actions and the outputs the agent must say."""

    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str | None = None
    instruction: str
    goal: Goal | None = None
    actions: list[Action] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> str:
        return str(value)

    def effective_goal(self) -> Goal:
        """The task's goal, or one derived from the gold actions (for τ-bench tasks, which have none)."""
        if self.goal is not None:
            return self.goal
        known: dict[str, str] = {}
        for action in self.actions:
            for key in IDENTITY_TOOLS.get(action.name, ()):
                value = action.arguments.get(key)
                if isinstance(value, str):
                    known.setdefault(key, value)
        request = Request(text=self.instruction, actions=list(range(len(self.actions))))
        return Goal(known=known, requests=[request])
