"""The generation pipeline: save the run's settings, Phase 1, Phase 2, stats; and the export entry point.

A run folder remembers its settings in ``config.json``. Re-running on the same folder resumes every
stage; re-running with settings that would change the output is refused with the differences listed.
Settings that only decide how fast or where from (concurrency, the phase to run, server address, key,
timeouts, retries, cache) may change between runs, and so may how much to make (``n``, ``attempts``):
blueprints and attempts are seeded by their index, so a grown run is what a fresh one would be.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apigen_gym.core.domain import load_domain
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.export import FORMATS, Format, export
from apigen_gym.generation.phase2 import run_phase2
from apigen_gym.generation.stats import GenerationStats, compute_stats, format_stats, write_stats
from apigen_gym.generation.store import RunPaths
from apigen_gym.util.jsonio import read_json, write_json
from apigen_gym.util.version import VERSION

PHASE1_MODULE = "apigen_gym.generation.phase1"
LLM_FIELDS = ("proposer", "user", "critic", "agent")
RUNTIME_FIELDS = frozenset({"phase", "concurrency", "n", "attempts"})
"""Config fields that do not decide what a run produces (only how fast, or how much of it)."""
TRANSPORT_FIELDS = frozenset(
    {
        "api_key",
        "base_url",
        "timeout",
        "max_retries",
        "backoff_base",
        "backoff_max",
        "max_connections",
        "cache_dir",
        "cache_mode",
        "prices",
    }
)
"""LLM settings that decide where and how a model is reached, not what it answers."""


class GenerationError(RuntimeError):
    """A run that cannot start: the message says why and what to do."""


class RunConfigError(GenerationError):
    """The run folder was made with settings that decide the output differently."""


def saved_config(config: GenerationConfig) -> dict[str, Any]:
    """The config as saved in ``config.json``: JSON, no API keys, with the versions that decide output."""
    data = config.model_dump(mode="json")
    for settings in _llm_settings(data):
        settings.pop("api_key", None)
    data["versions"] = {
        "env": load_domain(config.domain).version,
        "harness": VERSION,
    }
    return data


def _llm_settings(data: dict[str, Any]) -> list[dict[str, Any]]:
    found = [data[f] for f in LLM_FIELDS if isinstance(data.get(f), dict)]
    return found + [j for j in data.get("judges") or [] if isinstance(j, dict)]


def deciding(saved: dict[str, Any]) -> dict[str, Any]:
    """What in a saved config decides the output (runtime and transport settings left out)."""
    out = {k: v for k, v in saved.items() if k not in RUNTIME_FIELDS}
    for field in LLM_FIELDS:
        if isinstance(out.get(field), dict):
            out[field] = _without_transport(out[field])
    out["judges"] = [_without_transport(j) if isinstance(j, dict) else j for j in out.get("judges") or []]
    out["versions"] = {"env": (saved.get("versions") or {}).get("env")}
    if not any(out.get(f) for f in LLM_FIELDS) and not out["judges"]:
        out.pop("max_tokens", None)  # no model answers: the caps decide nothing
    return out


def _without_transport(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in TRANSPORT_FIELDS}


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} → {b!r}")
    return out


def prepare_run(config: GenerationConfig, run_dir: str | os.PathLike[str]) -> RunPaths:
    """Save ``config.json`` in a new run folder, or check that it matches an existing one's."""
    paths = RunPaths(Path(run_dir))
    current = saved_config(config)
    if paths.config.is_file():
        previous = read_json(paths.config)
        old, new = deciding(previous), deciding(current)
        if "versions" not in previous:  # saved by Phase 1 on its own: versions unknown
            del old["versions"], new["versions"]
        changed = _differences(old, new)
        if changed:
            raise RunConfigError(
                f"{paths.root} holds a run made with other settings, so it cannot be resumed with these: "
                + "; ".join(changed)
                + ". Use a new output folder, or the run's own settings to resume it."
            )
    write_json(paths.config, current)  # runtime settings (concurrency, phase) are those of the last run
    return paths


def _phase1() -> Callable[[GenerationConfig, RunPaths], Any]:
    """``run_phase1`` from the Phase 1 module, imported only when Phase 1 runs."""
    try:
        module = importlib.import_module(PHASE1_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != PHASE1_MODULE:
            raise
        raise GenerationError(
            f"Phase 1 is not available ({PHASE1_MODULE} is missing): run --phase 2 on a run folder "
            "whose phase1/accepted.jsonl exists"
        ) from None
    run: Callable[[GenerationConfig, RunPaths], Any] = module.run_phase1
    return run


def generate(
    config: GenerationConfig,
    run_dir: str | os.PathLike[str],
    *,
    max_steps: int | None = None,
    progress: bool = False,
) -> GenerationStats:
    """Run the phases ``config.phase`` asks for in ``run_dir`` (resuming), then write ``stats.json``."""
    paths = prepare_run(config, run_dir)
    seconds: dict[str, float] = {}
    if config.phase in ("1", "all"):
        run_phase1 = _phase1()
        started = time.perf_counter()
        run_phase1(config, paths)
        seconds["phase 1"] = time.perf_counter() - started
    if config.phase in ("2", "all"):
        if not paths.accepted.is_file():
            raise GenerationError(f"no accepted tasks in {paths.accepted}: run Phase 1 first (--phase 1)")
        started = time.perf_counter()
        run_phase2(config, paths, max_steps=max_steps, progress=progress)
        seconds["phase 2"] = time.perf_counter() - started
    stats = compute_stats(config.domain, paths.root, seconds)
    write_stats(stats, paths.root)
    return stats


def describe_backends(config: GenerationConfig) -> str:
    """Which proposer, judges, user and agent the run uses, in one line."""
    if config.offline:
        return "offline: template proposer, rules only, scripted user, oracle agent"
    proposer = f"proposer {config.proposer.model}" if config.proposer else "template proposer"
    judges = (
        f"judges {', '.join(j.model for j in config.judges)} (threshold {config.acceptance_threshold})"
        if config.judges
        else "rules only"
    )
    if config.user is None:
        user = "scripted user"
    elif config.user_best_of > 1:
        critic = (config.critic or config.user).model
        user = f"user {config.user.model} best-of-{config.user_best_of} (critic {critic})"
    else:
        user = f"user {config.user.model}"
    agent = f"agent {config.agent.model}" if config.agent else "oracle agent"
    return ", ".join((proposer, judges, user, agent))


def generate_main(
    config: GenerationConfig, run_dir: str | os.PathLike[str], *, progress: bool = False
) -> str:
    """``apigen-gym generate``: run the pipeline and return the summary to print."""
    stats = generate(config, run_dir, progress=progress)
    header = (
        f"generate {config.domain} n={config.n} phase={config.phase} → {Path(run_dir)}\n"
        f"{describe_backends(config)}"
    )
    return f"{header}\n\n{format_stats(stats)}\n\nstats: {RunPaths(Path(run_dir)).stats}"


def export_main(
    run_dir: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str], drop_stop: bool = False
) -> str:
    """``apigen-gym export``: write the run's verified dialogues in ``fmt``; return the line to print."""
    if fmt not in FORMATS:
        raise GenerationError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    chosen: Format = "openai" if fmt == "openai" else "sharegpt"
    count = export(run_dir, chosen, out, drop_stop)
    return f"exported {count} verified dialogue{'s' if count != 1 else ''} ({fmt}) to {out}"
