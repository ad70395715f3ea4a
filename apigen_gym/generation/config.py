"""The settings of a generation run, saved as ``RUN/config.json`` so that a re-run resumes the same run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from apigen_gym.core.domain import load_domain
from apigen_gym.generation.budget import DEFAULT_PROMPT_BUDGET, MIN_PROMPT_BUDGET
from apigen_gym.llm.settings import LLMSettings, MaxTokens, deciding_llm_settings
from apigen_gym.util import runconfig
from apigen_gym.util.version import VERSION

DEFAULT_FEEDBACK_ROUNDS = {"retail": 3, "airline": 5, "travel": 3}
LLM_FIELDS = ("proposer", "user", "critic", "agent")
RUNTIME_FIELDS = frozenset({"phase", "concurrency", "n", "attempts"})
"""Config fields that do not decide what a run produces (only how fast, or how much of it)."""


class GenerationConfig(BaseModel):
    """Everything that decides what a run produces. Offline when no model is given."""

    model_config = ConfigDict(frozen=True)

    domain: str
    n: int = Field(gt=0, description="accepted tasks (phase 1) / verified dialogues wanted")
    phase: Literal["1", "2", "all"] = "all"
    seed: int = 0
    data_dir: Path | None = None
    proposer: LLMSettings | None = None
    """The LLM proposer; ``None``: the offline template proposer (the domain's task sampler)."""
    judges: list[LLMSettings] = Field(default_factory=list)
    """The review committee (majority vote); empty: rules only."""
    acceptance_threshold: float = Field(0.5, ge=0, le=1)
    """Share of the committee's criteria a blueprint must pass (each criterion by majority vote)."""
    feedback_rounds: int | None = None
    """Proposal rounds per blueprint with feedback (default per domain: retail 3, airline 5, travel 3)."""
    recombine: float = Field(0.2, ge=0, le=1)
    """How many extra tasks to make by recombining accepted ones, as a share of ``n``."""
    evolving: float = Field(0.25, ge=0, le=1)
    """Share of blueprints asked to evolve mid-conversation (a change of mind, late context or a
    follow-up, in turn by chance): their context names the twist kind the proposer must build."""
    user: LLMSettings | None = None
    """The phase-2 user simulator; ``None``: the scripted user."""
    user_best_of: int = Field(1, ge=1)
    critic: LLMSettings | None = None
    agent: LLMSettings | None = None
    """The phase-2 agent; ``None``: the oracle agent."""
    max_tokens: MaxTokens = Field(default_factory=MaxTokens)
    """The cap of each role's answers (a client whose settings set ``max_tokens`` keeps its own)."""
    prompt_budget: int = Field(DEFAULT_PROMPT_BUDGET, ge=MIN_PROMPT_BUDGET)
    """Estimated prompt tokens of each proposer and judge request: their prompts show less of the
    context (shorter lists, fewer examples) until they fit (the default suits 8k-context models)."""
    attempts: int = Field(3, ge=1, description="phase-2 attempts per task")
    concurrency: int = Field(8, ge=1)
    decontaminate_against: list[str] = Field(default_factory=lambda: ["test", "evolving"])
    """Evaluation splits that generated tasks must not overlap."""

    @property
    def offline(self) -> bool:
        return self.proposer is None and not self.judges and self.user is None and self.agent is None

    def rounds(self) -> int:
        return self.feedback_rounds or DEFAULT_FEEDBACK_ROUNDS.get(self.domain, 3)


def saved_config(config: GenerationConfig) -> dict[str, Any]:
    """The config as saved in ``config.json``: JSON, no API keys, with the versions that decide output."""
    data = config.model_dump(mode="json")
    for settings in _llm_settings(data):
        settings.pop("api_key", None)
    data["versions"] = {"env": load_domain(config.domain).version, "harness": VERSION}
    return data


def _llm_settings(data: dict[str, Any]) -> list[dict[str, Any]]:
    found = [data[f] for f in LLM_FIELDS if isinstance(data.get(f), dict)]
    return found + [j for j in data.get("judges") or [] if isinstance(j, dict)]


def deciding(saved: runconfig.Settings) -> dict[str, Any]:
    """What in a saved config decides the output (runtime and transport settings left out)."""
    out = {k: v for k, v in saved.items() if k not in RUNTIME_FIELDS}
    for field in LLM_FIELDS:
        if isinstance(out.get(field), dict):
            out[field] = deciding_llm_settings(out[field])
    judges = out.get("judges") or []
    out["judges"] = [deciding_llm_settings(j) if isinstance(j, dict) else j for j in judges]
    if "versions" in saved:  # the harness version does not decide the output
        out["versions"] = {"env": (saved.get("versions") or {}).get("env")}
    if not any(out.get(f) for f in LLM_FIELDS) and not out["judges"]:
        out.pop("max_tokens", None)  # no model answers: the caps decide nothing
    if not out.get("proposer") and not out["judges"]:
        out.pop("prompt_budget", None)  # no proposer or judge prompt to fit
    return out


def bind_run(config: GenerationConfig, run_dir: str | os.PathLike[str]) -> None:
    """Save the run's settings in ``run_dir/config.json``, or refuse a folder made with other ones."""
    runconfig.bind(run_dir, saved_config(config), deciding)
