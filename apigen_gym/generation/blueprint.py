"""The records of phase 1: blueprints, proposal failures, verdicts, votes and the rows of each JSONL file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from apigen_gym.core.task import Action, Goal, Task, TwistKind
from apigen_gym.llm.types import Usage

Source = Literal["template", "llm", "recombined"]
Stage = Literal["format", "execution", "policy", "committee"]
STAGES: tuple[Stage, ...] = ("format", "execution", "policy", "committee")
"""Validators, cheapest first."""
CRITERIA: tuple[str, ...] = ("correctness", "completeness", "satisfaction", "creativity")
"""What each judge of the review committee scores, 0 or 1."""


class Blueprint(BaseModel):
    """A proposed task: the instruction q, the gold actions a_gt, the outputs o_gt and the structured goal."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    instruction: str
    goal: Goal
    actions: list[Action]
    outputs: list[str] = Field(default_factory=list)
    source: Source
    model: str | None = None
    """The proposer model (``None`` for the template proposer)."""
    parents: list[str] = Field(default_factory=list)
    """Ids of the accepted tasks a recombined blueprint was made from."""
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    meta: dict[str, Any] = Field(default_factory=dict)
    """Extra facts kept from the proposer (the template's intents, write count and twists)."""


class ProposalError(BaseModel):
    """A proposer that produced no blueprint: an unparsable answer, a failed call, no buildable task."""

    model_config = ConfigDict(frozen=True)

    reason: str
    raw: str | None = None
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0


class Vote(BaseModel):
    """One judge's answer: a 0/1 score per criterion and a short reason; ``error`` when it abstained."""

    judge: str
    scores: dict[str, bool] = Field(default_factory=dict)
    reason: str = ""
    error: str | None = None

    @property
    def abstained(self) -> bool:
        return self.error is not None


class Verdict(BaseModel):
    """What one validator decided, and why it rejected (``reasons`` read ``"<kind>: <detail>"``)."""

    stage: Stage
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0


class ContextSummary(BaseModel):
    """What a proposal was conditioned on, small enough to keep in every row."""

    user_id: str
    walk: list[list[str]]
    """The API-graph walks, each from a root to a write."""
    write_tools: list[str]
    rows: dict[str, list[str]]
    """Ids of the database rows shown, by table."""
    policy_sections: list[str]
    persona: str
    examples: list[str]
    """Ids of the few-shot tasks shown."""
    twist: TwistKind | None = None
    """How the task was asked to evolve mid-conversation, if it was."""


class RemovedRecord(BaseModel):
    """One row of ``removed.jsonl``: a validated task removed as a duplicate or for eval overlap."""

    task: Task
    reason: Literal["duplicate", "contaminated"]
    detail: str
    overlaps: str
    """The id of the task it duplicates or overlaps."""
    split: str | None = None
    """The evaluation split of ``overlaps`` (contamination only)."""


Outcome = Literal["accepted", "retry", "rejected", "duplicate", "contaminated"]
"""``retry``: rejected with another round to come; ``rejected``: no round left."""


def decides(outcome: str | None) -> bool:
    """Whether a row with ``outcome`` decides its blueprint (no further round follows)."""
    return outcome != "retry"


class ProposalRecord(BaseModel):
    """One row of ``proposals.jsonl``: a proposal round (or a recombination) with every verdict."""

    kind: Literal["proposal", "recombination"] = "proposal"
    index: int
    round: int = 1
    source: Source
    model: str | None = None
    context: ContextSummary | None = None
    feedback: list[str] = Field(default_factory=list)
    """The summaries this round's proposer was given (one per earlier round)."""
    blueprint: Blueprint | None = None
    error: ProposalError | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    summary: str | None = None
    """The feedback this round produced (its failures), when it was rejected."""
    outcome: Outcome
    parents: list[str] = Field(default_factory=list)
    task: Task | None = None
    """The accepted task (kept here too, so an interrupted run can restore ``accepted.jsonl``)."""
    removal: RemovedRecord | None = None
    """Why a validated task was dropped (outcome ``duplicate`` or ``contaminated``)."""
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0

    @property
    def final(self) -> bool:
        """Whether this row decides its blueprint (no further round follows)."""
        return decides(self.outcome)

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(v.passed for v in self.verdicts)
