"""What a model call yields: token usage, the answered completion, or a labelled error."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class Completion(BaseModel):
    """One answered call: the assistant message (OpenAI format), its usage and cost."""

    message: dict[str, Any]
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0
    attempts: int = 1
    cached: bool = False
    finish_reason: str | None = None
    notes: list[str] = Field(default_factory=list)
    """What was unusual about this answer (see :mod:`apigen_gym.llm.shapes`): ``cut``, ``text-tool-calls``,
    ``timeout`` (a try that timed out before this answer), ``prompt-only`` (the server refused
    ``response_format``), ``unreadable`` (a try whose answer the server could not read)."""

    @property
    def content(self) -> str:
        return str(self.message.get("content") or "")

    @property
    def cut(self) -> bool:
        """The answer stopped at ``max_tokens`` (``finish_reason: "length"``): it is not a full answer."""
        return self.finish_reason == "length"


ErrorKind = Literal["infrastructure", "request", "model"]


class LLMError(Exception):
    """A call that did not produce an answer: ``infrastructure`` (the server or the network failed,
    after retries), ``request`` (the server refused the request) or ``model`` (the model answered, but
    the server could not read its answer, again with other seeds)."""

    def __init__(self, kind: ErrorKind, cause: str, attempts: int):
        self.kind = kind
        self.cause = cause
        self.attempts = attempts
        super().__init__(self.label)

    @property
    def label(self) -> str:
        """E.g. ``infrastructure: RateLimitError (429) after 6 attempts``."""
        if self.attempts == 0:
            return f"{self.kind}: {self.cause}"
        return f"{self.kind}: {self.cause} after {self.attempts} attempt{'s' if self.attempts != 1 else ''}"
