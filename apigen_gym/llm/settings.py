"""Where and how to call a model: server, model, limits, retries, transport, cache, prices."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Transport = Literal["aiohttp", "openai"]
"""How a request goes on the wire: see :mod:`apigen_gym.llm.transport`."""


class Price(BaseModel):
    """USD per million tokens."""

    prompt: float
    completion: float


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(prompt=2.5, completion=10.0),
    "gpt-4o-mini": Price(prompt=0.15, completion=0.6),
    "gpt-4.1": Price(prompt=2.0, completion=8.0),
    "gpt-4.1-mini": Price(prompt=0.4, completion=1.6),
}
"""List prices of a few hosted models (override with ``LLMSettings.prices``); unknown models cost 0."""

CacheMode = Literal["off", "read-write", "replay"]

Role = Literal["agent", "user", "critic", "proposer", "judge", "recombine"]
"""Who a call is made for; each role has its own ``max_tokens`` cap."""

DEFAULT_MAX_TOKENS: dict[str, int] = {
    "agent": 1024,
    "user": 256,
    "critic": 128,
    "proposer": 2048,
    "judge": 256,
    "recombine": 1024,
}
"""Completion tokens per answer, by role: a customer's turn is short, a blueprint is not."""

DEFAULT_RESAMPLES = 2
RESAMPLES: dict[str, int] = {
    "agent": 0,
    "user": DEFAULT_RESAMPLES,
    "critic": DEFAULT_RESAMPLES,
    "proposer": DEFAULT_RESAMPLES,
    "judge": DEFAULT_RESAMPLES,
    "recombine": DEFAULT_RESAMPLES,
}
"""How often an answer the server could not read (a 500 saying the model's output does not parse) is
asked for again, with another seed, by role. None for the agent: its unreadable answer is its own
mistake, which it is shown as a malformed tool call (see :mod:`apigen_gym.players.model_agents`)."""


class MaxTokens(BaseModel):
    """The ``max_tokens`` cap of each role's answers (``--max-tokens ROLE=N``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: int = Field(DEFAULT_MAX_TOKENS["agent"], ge=1)
    user: int = Field(DEFAULT_MAX_TOKENS["user"], ge=1)
    critic: int = Field(DEFAULT_MAX_TOKENS["critic"], ge=1)
    proposer: int = Field(DEFAULT_MAX_TOKENS["proposer"], ge=1)
    judge: int = Field(DEFAULT_MAX_TOKENS["judge"], ge=1)
    recombine: int = Field(DEFAULT_MAX_TOKENS["recombine"], ge=1)

    @classmethod
    def parse(cls, specs: list[str] | None) -> MaxTokens:
        """From ``ROLE=N`` items (each may hold several, comma-separated); ValueError says what is wrong."""
        given: dict[str, int] = {}
        for spec in specs or []:
            for item in filter(None, (part.strip() for part in spec.split(","))):
                role, sep, number = item.partition("=")
                role = role.strip()
                if not sep or role not in DEFAULT_MAX_TOKENS:
                    roles = ", ".join(DEFAULT_MAX_TOKENS)
                    raise ValueError(f"--max-tokens {item!r}: expected ROLE=N with ROLE one of {roles}")
                try:
                    given[role] = int(number)
                except ValueError:
                    raise ValueError(f"--max-tokens {item!r}: N must be a whole number") from None
                if given[role] < 1:
                    raise ValueError(f"--max-tokens {item!r}: N must be at least 1")
        return cls(**given)

    def cap(self, role: Role, settings: LLMSettings | None = None) -> int:
        """``role``'s cap, unless the client's ``settings`` set their own ``max_tokens``."""
        if settings is not None and settings.max_tokens:
            return settings.max_tokens
        return int(getattr(self, role))


TRANSPORT_FIELDS = frozenset(
    {
        "api_key",
        "base_url",
        "timeout",
        "max_retries",
        "backoff_base",
        "backoff_max",
        "max_connections",
        "max_in_flight",
        "transport",
        "cache_dir",
        "cache_mode",
        "prices",
    }
)
"""Settings that decide where and how a model is reached, not what it answers."""


def deciding_llm_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The part of saved LLM settings that decides the answers (model, sampling), transport left out."""
    return {k: v for k, v in settings.items() if k not in TRANSPORT_FIELDS}


class LLMSettings(BaseModel):
    """Where and how to call a model. ``from_env`` fills the gaps from ``OPENAI_*`` variables."""

    model_config = ConfigDict(frozen=True)

    model: str
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    temperature: float | None = Field(None, ge=0)
    seed: int | None = None
    max_tokens: int | None = Field(None, gt=0)
    """A cap for every call of this client; ``None``: each role's own cap (:data:`DEFAULT_MAX_TOKENS`)."""
    timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_base: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    max_connections: int = Field(1024, gt=0)
    max_in_flight: int | None = Field(default=None, ge=1)
    """Requests sent at once to this client's server (shared by every client of that server in the
    process); more wait in the client, where no timeout runs. ``1`` for a server with one slot."""
    transport: Transport = "aiohttp"
    """``aiohttp``: the client's request on a pooled session; ``openai``: through the client's stack."""
    cache_dir: Path | None = None
    cache_mode: CacheMode = "read-write"
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def from_env(
        cls,
        model: str | None = None,
        base_url: str | None = None,
        *,
        model_option: str = "model=",
        **overrides: Any,
    ) -> LLMSettings:
        """Settings from arguments, then ``OPENAI_MODEL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``.

        ``model_option`` is how the caller's user names the model (a flag, a keyword) in the error
        raised when there is none.
        """
        chosen = model or os.environ.get("OPENAI_MODEL")
        if not chosen:
            raise ValueError(f"no model: pass {model_option} (or set OPENAI_MODEL)")
        return cls(
            model=chosen,
            base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=overrides.pop("api_key", None) or os.environ.get("OPENAI_API_KEY"),
            **{k: v for k, v in overrides.items() if v is not None},
        )

    def price(self) -> Price | None:
        """This model's price: an exact entry, else the longest entry the model name starts with."""
        if self.model in self.prices:
            return self.prices[self.model]
        matches = [name for name in self.prices if self.model.startswith(name)]
        return self.prices[max(matches, key=len)] if matches else None
