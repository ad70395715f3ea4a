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


class LLMSettings(BaseModel):
    """Where and how to call a model. ``from_env`` fills the gaps from ``OPENAI_*`` variables."""

    model_config = ConfigDict(frozen=True)

    model: str
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    timeout: float = 120.0
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_connections: int = 1024
    transport: Transport = "aiohttp"
    """``aiohttp``: the client's request on a pooled session; ``openai``: through the client's stack."""
    cache_dir: Path | None = None
    cache_mode: CacheMode = "read-write"
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def from_env(cls, model: str | None = None, base_url: str | None = None, **overrides: Any) -> LLMSettings:
        """Settings from arguments, then ``OPENAI_MODEL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``."""
        chosen = model or os.environ.get("OPENAI_MODEL")
        if not chosen:
            raise ValueError("no model: pass --model (or set OPENAI_MODEL)")
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
