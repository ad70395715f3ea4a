"""An evaluation's records: the episode as written to ``results.jsonl``, its summary (all but the
messages), and how a finished episode travels to the process that writes it.

A driver of a Ray run takes in every episode of the run. It writes each one's line as its worker
made it and keeps the summary, which is what the run's tables, progress and metrics read: the
messages, nearly all of a record, are read from the line only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from pydantic import BaseModel, Field

from apigen_gym.llm.types import Usage
from apigen_gym.util.jsonio import RecordLine, model_from_json


class EpisodeSummary(BaseModel):
    """An episode's record without its messages."""

    task_id: str
    trial: int
    reward: float
    reward_info: dict[str, Any]
    termination: str | None
    steps: int
    env_id: str
    agent: str
    user: str
    seconds: float
    error: str | None = None
    """``None``, or the labelled infrastructure error that stopped the episode (then reward is 0)."""
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    meta: dict[str, Any] = Field(default_factory=dict)


class EpisodeResult(EpisodeSummary):
    """One finished episode, as written to ``results.jsonl``: its summary, then its messages."""

    messages: list[dict[str, Any]]


_MESSAGES = {"messages"}


class Episode(RecordLine[EpisodeResult]):
    """A finished episode as the process that writes the run takes it: its summary and its line.

    Where the episode was played, the record is held and the summary is the record itself. Pickled (a
    Ray worker's batch on its way to the driver), an ``Episode`` carries its line and its summary's
    JSON, both read in the driver's own thread when first asked for (not in Ray's receiving thread,
    where reading competes with the driver's for the interpreter); the driver reads the summary,
    writes the line as it is, and reads the whole record only when it is asked for.
    """

    __slots__ = ("_summary", "_summary_line")
    model = EpisodeResult

    def __init__(self, record: EpisodeResult):
        super().__init__(record)
        self._summary: EpisodeSummary | None = record
        self._summary_line = ""

    @property
    def summary(self) -> EpisodeSummary:
        """The record but its messages."""
        if self._summary is None:
            self._summary = model_from_json(EpisodeSummary, self._summary_line)
        return self._summary

    @property
    def key(self) -> tuple[str, int]:
        summary = self.summary
        return summary.task_id, summary.trial

    def __getstate__(self) -> tuple[str, str]:
        held = self._record
        if held is not None:
            return self.line, held.model_dump_json(exclude=_MESSAGES)
        return self.line, self._summary_line  # sent before: its texts go on as they came

    def __setstate__(self, state: tuple[str, str]) -> None:
        self._line, self._summary_line = state
        self._record = self._summary = None


class EvalResults(Sequence[EpisodeResult]):
    """The episodes of an evaluation, in (trial, task) order: each record read from its line when
    first asked for (then kept); :attr:`summaries` without reading any."""

    def __init__(self, episodes: Sequence[Episode]):
        self._episodes = list(episodes)

    @property
    def summaries(self) -> list[EpisodeSummary]:
        """Every episode's summary: what the run's tables and metrics read."""
        return [episode.summary for episode in self._episodes]

    def __len__(self) -> int:
        return len(self._episodes)

    @overload
    def __getitem__(self, index: int) -> EpisodeResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[EpisodeResult]: ...

    def __getitem__(self, index: int | slice) -> EpisodeResult | list[EpisodeResult]:
        if isinstance(index, slice):
            return [episode.record for episode in self._episodes[index]]
        return self._episodes[index].record

    def __iter__(self) -> Iterator[EpisodeResult]:
        return (episode.record for episode in self._episodes)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EvalResults):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EvalResults({len(self)} episodes)"
