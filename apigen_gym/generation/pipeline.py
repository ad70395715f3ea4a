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
from apigen_gym.generation.config import GenerationConfig, bind_run
from apigen_gym.generation.export import FORMATS, Format, export
from apigen_gym.generation.phase2 import run_phase2
from apigen_gym.generation.proposed import RoundFacts
from apigen_gym.generation.stats import (
    GenerationStats,
    Phase2Tally,
    compute_stats,
    format_stats,
    write_stats,
)
from apigen_gym.generation.store import RunPaths
from apigen_gym.util.executors import Executor
from apigen_gym.util.gcbudget import gc_budget
from apigen_gym.util.runconfig import RunFolderError

PHASE1_MODULE = "apigen_gym.generation.phase1"


class GenerationError(RuntimeError):
    """A run that cannot start: the message says why and what to do."""


class RunConfigError(GenerationError):
    """The run folder was made with settings that decide the output differently."""


def prepare_run(config: GenerationConfig, run_dir: str | os.PathLike[str]) -> RunPaths:
    """Save ``config.json`` in a new run folder, or check that it matches an existing one's."""
    paths = RunPaths(Path(run_dir))
    try:
        bind_run(config, paths.root)  # runtime settings (concurrency, phase) are those of the last run
    except RunFolderError as exc:
        raise RunConfigError(str(exc)) from None
    return paths


def _phase1() -> Callable[..., Any]:
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
    run: Callable[..., Any] = module.run_phase1
    return run


def generate(
    config: GenerationConfig,
    run_dir: str | os.PathLike[str],
    *,
    max_steps: int | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> GenerationStats:
    """Run the phases ``config.phase`` asks for in ``run_dir`` (resuming), then write ``stats.json``.

    ``executor``: where blueprints and dialogues are made (default: this process); this process alone
    writes the run folder, so a run may change executors between resumes.
    """
    paths = prepare_run(config, run_dir)
    with gc_budget():  # the run keeps its records: full collections on a time budget
        return _generate(config, paths, max_steps, progress, executor)


def _generate(
    config: GenerationConfig,
    paths: RunPaths,
    max_steps: int | None,
    progress: bool,
    executor: Executor | None,
) -> GenerationStats:
    seconds: dict[str, float] = {}
    tally: Phase2Tally | None = None
    rounds: list[RoundFacts] | None = None
    if config.phase in ("1", "all"):
        run_phase1 = _phase1()
        started = time.perf_counter()
        rounds = []  # the stats, as the rows are recorded
        run_phase1(config, paths, executor=executor, observe=rounds.append)
        seconds["phase 1"] = time.perf_counter() - started
    if config.phase in ("2", "all"):
        if not paths.accepted.is_file():
            raise GenerationError(f"no accepted tasks in {paths.accepted}: run Phase 1 first (--phase 1)")
        started = time.perf_counter()
        tally = Phase2Tally(load_domain(config.domain))  # the stats, as the episodes are recorded
        run_phase2(
            config, paths, max_steps=max_steps, progress=progress, executor=executor, observe=tally.add
        )
        seconds["phase 2"] = time.perf_counter() - started
    stats = compute_stats(config.domain, paths.root, seconds, tally, rounds)
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


def format_run(
    config: GenerationConfig,
    run_dir: str | os.PathLike[str],
    stats: GenerationStats,
    executor: Executor | None = None,
) -> str:
    """What ``apigen-gym generate`` prints: the run, its backends, its stats and where they are."""
    where = f" executor={executor.describe()}" if executor is not None else ""
    header = (
        f"generate {config.domain} n={config.n} phase={config.phase}{where} → {Path(run_dir)}\n"
        f"{describe_backends(config)}"
    )
    return f"{header}\n\n{format_stats(stats)}\n\nstats: {RunPaths(Path(run_dir)).stats}"


def generate_main(
    config: GenerationConfig, run_dir: str | os.PathLike[str], *, progress: bool = False
) -> str:
    """``apigen-gym generate``: run the pipeline and return the summary to print."""
    return format_run(config, run_dir, generate(config, run_dir, progress=progress))


_OUTAGES = {"infrastructure": "an infrastructure error", "model_error": "an unreadable model answer"}
"""Phase 2 failure labels that mean no model call gave a usable answer."""


def outage(stats: GenerationStats) -> str | None:
    """Why a run verified nothing when every model call it made failed (``None`` when it is not so).

    Phase 1 counts when every proposal round ended in an LLM error and no task was accepted; Phase 2
    when every episode ended in an infrastructure error or an answer the model could not make readable.
    """
    phase1 = stats.phase1 or {}
    rounds = int(phase1.get("proposals") or 0)
    llm_errors = int(((phase1.get("rejections") or {}).get("format") or {}).get("llm error") or 0)
    if rounds and llm_errors == rounds and not stats.phase1_summary.accepted:
        return f"phase 1 accepted nothing: all {rounds} proposal rounds ended in an LLM error"
    phase2 = stats.phase2
    failed = set(phase2.failures)
    if phase2.episodes and not phase2.dialogues and failed and failed <= set(_OUTAGES):
        how = " or ".join(_OUTAGES[kind] for kind in sorted(failed))
        return f"phase 2 verified nothing: all {phase2.episodes} episodes ended in {how}"
    return None


def export_main(
    run_dir: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str], drop_stop: bool = False
) -> str:
    """``apigen-gym export``: write the run's verified dialogues in ``fmt``; return the line to print."""
    if fmt not in FORMATS:
        raise GenerationError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    chosen: Format = "openai" if fmt == "openai" else "sharegpt"
    count = export(run_dir, chosen, out, drop_stop)
    return f"exported {count} verified dialogue{'s' if count != 1 else ''} ({fmt}) to {out}"
