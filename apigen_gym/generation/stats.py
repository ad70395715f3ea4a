"""Counts and rates of a generation run, from its files: written to ``RUN/stats.json`` and printed.

Phase 1: proposals, acceptance per validation stage, feedback rounds, recombinations, evolving goals.
Phase 2: success rate, attempts, failure labels. Kept dialogues: turns and tool calls, how varied
the user's and the agent's wording is (distinct-2), which write tools and policy rules they exercise,
tokens and cost per dialogue.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from tabulate import tabulate

from apigen_gym.core.domain import Domain, load_domain
from apigen_gym.core.policy import Rule, Trace
from apigen_gym.core.tools import ToolKind
from apigen_gym.generation.blueprint import ProposalRecord
from apigen_gym.generation.dialogue_facts import SideCounts, words
from apigen_gym.generation.phase2 import VERIFIED, DialogueRecord, Played, accepted_tasks, json_rows
from apigen_gym.generation.proposed import RoundFacts
from apigen_gym.generation.store import RunPaths, read_models
from apigen_gym.llm.types import Usage
from apigen_gym.util.jsonio import held_rows, read_json, write_json


class Distribution(BaseModel):
    """Mean, median, min and max of a list of numbers (zeros when it is empty)."""

    mean: float = 0.0
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        if not values:
            return cls()
        return cls(
            mean=round(statistics.fmean(values), 3),
            median=float(statistics.median(values)),
            min=float(min(values)),
            max=float(max(values)),
        )


class StageAcceptance(BaseModel):
    """How many blueprints a validation stage checked and passed."""

    stage: str
    checked: int
    passed: int
    rate: float


class Phase1Summary(BaseModel):
    proposals: int = Field(0, description="proposal rounds (rows of proposals.jsonl, recombinations apart)")
    accepted: int = 0
    removed: int = 0
    recombinations: int = Field(0, description="recombinations tried")
    recombined: int = Field(0, description="accepted tasks made by recombining others")
    evolving: dict[str, int] = Field(
        default_factory=dict, description="accepted tasks that evolve, by twist kind"
    )
    acceptance: list[StageAcceptance] = Field(default_factory=list)
    feedback_rounds: dict[str, int] = Field(default_factory=dict, description="accepted tasks by rounds used")
    mean_rounds: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0


class Phase2Summary(BaseModel):
    tasks: int = 0
    verified_tasks: int = 0
    success_rate: float = Field(0.0, description="share of tasks with a verified dialogue")
    episodes: int = 0
    dialogues: int = 0
    attempts_per_task: float = Field(0.0, description="episodes per task played")
    success_at_attempt: dict[str, int] = Field(default_factory=dict)
    failures: dict[str, int] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    cost: float = 0.0


class DialogueShape(BaseModel):
    turns: Distribution = Field(default_factory=Distribution, description="user and assistant messages")
    tool_calls: Distribution = Field(default_factory=Distribution)


class Wording(BaseModel):
    """How varied one side's messages are: distinct-2, the share of distinct word bigrams among all
    bigrams of its turns (Li et al., 2016); comparable between runs of similar size."""

    turns: int = 0
    bigrams: int = 0
    distinct_bigrams: int = 0
    distinct_2: float = 0.0


class Language(BaseModel):
    user: Wording = Field(default_factory=Wording)
    agent: Wording = Field(default_factory=Wording, description="the agent's text turns (not tool calls)")


class Coverage(BaseModel):
    write_tools: dict[str, int] = Field(default_factory=dict, description="dialogues with a successful call")
    unused_write_tools: list[str] = Field(default_factory=list)
    rules: dict[str, int] = Field(
        default_factory=dict, description="dialogues calling a rule's subject tools"
    )
    unexercised_rules: list[str] = Field(default_factory=list)


class Spend(BaseModel):
    tokens: int = 0
    cost: float = 0.0
    tokens_per_dialogue: float = 0.0
    cost_per_dialogue: float = 0.0


class GenerationStats(BaseModel):
    """Everything ``stats.json`` holds."""

    domain: str
    phase1: dict[str, Any] | None = None
    """Phase 1's own counts, kept as Phase 1 wrote them (``None`` when Phase 1 did not run here)."""
    phase1_summary: Phase1Summary = Field(default_factory=Phase1Summary)
    phase2: Phase2Summary = Field(default_factory=Phase2Summary)
    dialogues: DialogueShape = Field(default_factory=DialogueShape)
    language: Language = Field(default_factory=Language)
    coverage: Coverage = Field(default_factory=Coverage)
    spend: Spend = Field(default_factory=Spend)
    seconds: dict[str, float] = Field(default_factory=dict)


# --- phase 1 ------------------------------------------------------------------------------------


def _passed(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        for key in ("passed", "ok", "accepted", "pass"):
            if isinstance(value.get(key), bool):
                return bool(value[key])
    return None


def verdicts(row: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """A proposal's validator verdicts as (stage, passed): from a list of verdicts or a stage map."""
    found = next((row[k] for k in ("verdicts", "checks", "validators", "stages") if k in row), None)
    out: list[tuple[str, bool]] = []
    if isinstance(found, Mapping):
        items: Iterable[tuple[Any, Any]] = found.items()
    elif isinstance(found, list):
        items = (
            (next((v[k] for k in ("stage", "validator", "name") if k in v), None), v)
            for v in found
            if isinstance(v, Mapping)
        )
    else:
        return out
    for stage, verdict in items:
        ok = _passed(verdict)
        if stage is not None and ok is not None:
            out.append((str(stage), ok))
    return out


def _usage(raw: Any) -> Usage:
    if isinstance(raw, Mapping):
        return Usage(
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
        )
    return Usage()


def _rounds(paths: RunPaths) -> Iterator[RoundFacts]:
    """The rows of ``proposals.jsonl``: the records themselves when this process wrote them (no reading
    again), else as JSON objects, whatever their layout of verdicts."""
    held = held_rows(paths.proposals, ProposalRecord)
    if held is not None:
        yield from map(RoundFacts.of, held)
        return
    for row in json_rows(paths.proposals):
        stages = tuple(verdicts(row))
        outcome = row.get("outcome")
        yield RoundFacts(
            row.get("kind") == "recombination",
            outcome if isinstance(outcome, str) else None,
            stages,
            _usage(row.get("usage")),
            float(row.get("cost") or 0.0),
            bool(row.get("accepted", all(ok for _, ok in stages))),
        )


def phase1_summary(paths: RunPaths, rounds: Iterable[RoundFacts] | None = None) -> Phase1Summary:
    """Phase 1's numbers: from ``proposals.jsonl`` (when present; ``rounds``: its rows' facts, as the
    run recorded them) and the accepted tasks' provenance."""
    checked: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    accepted = decided = proposals = recombinations = prompt_tokens = completion_tokens = 0
    cost = 0.0
    for round_ in _rounds(paths) if rounds is None else rounds:  # plain variables: no model per row
        prompt_tokens += round_.usage.prompt_tokens
        completion_tokens += round_.usage.completion_tokens
        cost += round_.cost
        if round_.recombination:
            recombinations += 1
            continue
        proposals += 1
        for stage, ok in round_.stages:
            checked[stage] += 1
            passed[stage] += ok
        if round_.outcome is not None:  # one row per round: "retry" rounds do not decide their blueprint
            decided += round_.outcome != "retry"
            accepted += round_.outcome == "accepted"
        else:
            decided += 1
            accepted += round_.accepted
    summary = Phase1Summary(
        proposals=proposals,
        recombinations=recombinations,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
        cost=cost,
    )
    summary.acceptance = [
        StageAcceptance(stage=s, checked=n, passed=passed[s], rate=round(passed[s] / n, 4))
        for s, n in checked.items()
    ]
    if decided:
        rate = round(accepted / decided, 4)
        summary.acceptance.append(
            StageAcceptance(stage="overall (blueprints)", checked=decided, passed=accepted, rate=rate)
        )
    tasks = accepted_tasks(paths)
    summary.accepted = len(tasks)
    kinds = Counter(r.twist.kind for t in tasks for r in t.effective_goal().requests if r.twist is not None)
    summary.evolving = dict(sorted(kinds.items()))
    summary.removed = sum(1 for _ in json_rows(paths.removed))
    used: list[int] = []
    recombined = 0
    for task in tasks:
        prov = task.meta.get("provenance") or {}
        source = str(prov.get("source") or task.meta.get("source") or "")
        if "recomb" in source or prov.get("parents"):
            recombined += 1
            continue
        value = prov.get("rounds")
        if isinstance(value, int) and not isinstance(value, bool):
            used.append(value)
    summary.recombined = recombined
    summary.feedback_rounds = {str(k): v for k, v in sorted(Counter(used).items())}
    summary.mean_rounds = round(statistics.fmean(used), 3) if used else 0.0
    summary.cost = round(summary.cost, 8)
    return summary


def reported_phase1(paths: RunPaths) -> dict[str, Any] | None:
    """Phase 1's own counts, as it wrote them under ``phase1`` in ``stats.json`` (None when absent)."""
    if not paths.stats.is_file():
        return None
    try:
        current = read_json(paths.stats)
    except ValueError:
        return None
    found = current.get("phase1") if isinstance(current, dict) else None
    return found if isinstance(found, dict) else None


# --- phase 2 ------------------------------------------------------------------------------------


class Bigrams:
    """Distinct-2 of one side's turns, gathered a turn at a time (bigrams do not cross turns)."""

    def __init__(self) -> None:
        self.turns = 0
        self.total = 0
        self.distinct: set[tuple[str, str]] = set()

    def add(self, tokens: Sequence[str]) -> None:
        """One turn, as its :func:`words`."""
        self.turns += 1
        self.total += max(len(tokens) - 1, 0)
        self.distinct.update(zip(tokens, tokens[1:]))

    def add_side(self, side: list[list[str]] | SideCounts) -> None:
        """One side of a dialogue: its turns' words, or their counts as a worker sent them."""
        if isinstance(side, SideCounts):
            self.turns += side.turns
            self.total += side.bigrams
            self.distinct.update(side.new)
            return
        for tokens in side:
            self.add(tokens)

    def wording(self) -> Wording:
        distinct = len(self.distinct)
        return Wording(
            turns=self.turns,
            bigrams=self.total,
            distinct_bigrams=distinct,
            distinct_2=round(distinct / self.total, 4) if self.total else 0.0,
        )


def wording(texts: Iterable[str]) -> Wording:
    """Distinct-2 over ``texts``, each a turn: the share of distinct word bigrams among all."""
    bigrams = Bigrams()
    for text in texts:
        bigrams.add(words(text))
    return bigrams.wording()


class _ProbeTrace(Trace):
    """An empty trace that remembers which tools a rule asks it for."""

    def __init__(self) -> None:
        super().__init__(steps=[], messages=[])
        self.asked: set[str] = set()

    def calls(self, *names: str) -> Iterator[Any]:
        self.asked.update(names)
        return iter(())


def rule_subjects(domain: Domain) -> dict[str, frozenset[str]]:
    """The tools each rule is about: declared (``rule.tools``), asked of the trace, or named in its id.

    Rules about no tool in particular (authentication, one call per turn) get an empty set: every
    dialogue with a tool call exercises them.
    """
    names = domain.tools.names
    tokens = {name: set(name.split("_")) for name in names}
    vocabulary = set().union(*tokens.values()) if tokens else set()
    subjects: dict[str, frozenset[str]] = {}
    for rule in domain.policy.rules:
        declared = getattr(rule, "tools", None)
        if declared:
            subjects[rule.id] = frozenset(declared)
            continue
        probe = _ProbeTrace()
        try:
            rule(probe)
        except Exception:  # a rule that cannot run on an empty trace names no tool this way
            probe.asked.clear()
        found = probe.asked & set(names)
        if not found:
            words = {w for w in rule.id.rsplit(".", 1)[-1].split("_") if len(w) > 3} & vocabulary
            found = {n for n in names if words and words <= tokens[n]}
        subjects[rule.id] = frozenset(found)
    return subjects


class Phase2Tally:
    """What the stats need of a run's episodes, gathered one episode at a time: as Phase 2 records
    them (so a run's stats need no second reading of its dialogues) or as read from the files.

    Kept dialogues (``dialogues.jsonl``) give the shape, wording and coverage; every episode counts
    for the success rate, the attempts, the failure labels and the spend.
    """

    def __init__(self, domain: Domain):
        self.write_tools = [t.name for t in domain.tools.of_kind(ToolKind.WRITE)]
        self.rules: list[Rule] = list(domain.policy.rules)
        self.subjects = rule_subjects(domain)
        self.played: set[str] = set()
        self.verified: set[str] = set()
        self.episodes = 0
        self.usage = Usage()
        self.costs: list[float] = []
        self.success_at: Counter[int] = Counter()
        self.failures: Counter[str] = Counter()
        self.turns: list[int] = []
        self.calls: list[int] = []
        self.user = Bigrams()
        self.agent = Bigrams()
        self.used: Counter[str] = Counter()
        self.exercised: Counter[str] = Counter()

    def add(self, played: Played, kept: bool) -> None:
        """One episode: a kept dialogue (``kept``; only a ``success`` counts as one) or a failure."""
        if kept and played.label != "success":
            return
        self.episodes += 1
        self.played.add(played.task_id)
        if played.label in VERIFIED:
            self.verified.add(played.task_id)
        self.usage = self.usage + played.usage
        self.costs.append(played.cost)
        if not kept:
            self.failures[played.label] += 1
            return
        self.success_at[played.attempt] += 1
        facts = played.facts()
        self.user.add_side(facts.user)
        self.agent.add_side(facts.agent)
        self.turns.append(facts.turns)
        self.calls.append(len(facts.calls))
        called = {name for name, _ in facts.calls}
        self.used.update({name for name, ok in facts.calls if ok})  # coverage reads the write tools' counts
        for rule in self.rules:
            subject = self.subjects[rule.id]
            if (subject and subject & called) or (not subject and called):
                self.exercised[rule.id] += 1

    @property
    def dialogues(self) -> int:
        return sum(self.success_at.values())

    @property
    def cost(self) -> float:
        return math.fsum(self.costs)  # exact: the same whatever order the episodes came in

    def phase2(self, tasks: int) -> Phase2Summary:
        """Success rate, attempts and failure labels over every episode."""
        played, verified = len(self.played), len(self.verified)
        return Phase2Summary(
            tasks=tasks,
            verified_tasks=verified,
            success_rate=round(verified / tasks, 4) if tasks else 0.0,
            episodes=self.episodes,
            dialogues=self.dialogues,
            attempts_per_task=round(self.episodes / played, 3) if played else 0.0,
            success_at_attempt={str(k): v for k, v in sorted(self.success_at.items())},
            failures=dict(sorted(self.failures.items())),
            usage=self.usage,
            cost=round(self.cost, 8),
        )

    def shape(self) -> DialogueShape:
        return DialogueShape(turns=Distribution.of(self.turns), tool_calls=Distribution.of(self.calls))

    def language(self) -> Language:
        """Distinct-2 of the user's turns and of the agent's text turns, over the kept dialogues."""
        return Language(user=self.user.wording(), agent=self.agent.wording())

    def coverage(self) -> Coverage:
        """Which write tools the kept dialogues use, and which rules they exercise."""
        writes, rules = self.write_tools, self.rules
        return Coverage(
            write_tools={name: self.used[name] for name in writes},
            unused_write_tools=[name for name in writes if not self.used[name]],
            rules={r.id: self.exercised[r.id] for r in rules},
            unexercised_rules=[r.id for r in rules if not self.exercised[r.id]],
        )

    @classmethod
    def of(cls, domain: Domain, paths: RunPaths) -> Phase2Tally:
        """The tally of a run folder's files."""
        tally = cls(domain)
        for path in (paths.dialogues, paths.failures):
            for record in read_models(path, DialogueRecord):
                tally.add(Played(record), path == paths.dialogues)
        return tally


# --- the whole run ------------------------------------------------------------------------------


def compute_stats(
    domain: str,
    run_dir: str | Path,
    seconds: Mapping[str, float] | None = None,
    tally: Phase2Tally | None = None,
    rounds: Sequence[RoundFacts] | None = None,
) -> GenerationStats:
    """The stats of the run in ``run_dir`` (any phase may be missing); ``tally``: its episodes, as
    Phase 2 recorded them, and ``rounds``: its Phase 1 rows' facts, as Phase 1 recorded them (each read
    from the files when not given)."""
    paths = RunPaths(run_dir)
    phase1 = phase1_summary(paths, rounds)
    reported = reported_phase1(paths)
    episodes = tally if tally is not None else Phase2Tally.of(load_domain(domain), paths)
    phase2 = episodes.phase2(phase1.accepted)
    tokens = phase1.usage.total_tokens + phase2.usage.total_tokens
    cost = phase1.cost + phase2.cost
    kept = phase2.dialogues
    return GenerationStats(
        domain=domain,
        phase1=reported,
        phase1_summary=phase1,
        phase2=phase2,
        dialogues=episodes.shape(),
        language=episodes.language(),
        coverage=episodes.coverage(),
        spend=Spend(
            tokens=tokens,
            cost=round(cost, 8),
            tokens_per_dialogue=round(tokens / kept, 1) if kept else 0.0,
            cost_per_dialogue=round(cost / kept, 8) if kept else 0.0,
        ),
        seconds={k: round(v, 3) for k, v in (seconds or {}).items()},
    )


def write_stats(stats: GenerationStats, run_dir: str | Path) -> Path:
    """Write ``RUN/stats.json`` (atomically; Phase 1's ``phase1`` key as read) and return its path."""
    path = RunPaths(run_dir).stats
    write_json(path, stats.model_dump(mode="json"))
    return path


def format_stats(stats: GenerationStats, fmt: str = "simple") -> str:
    """The stats as tables: phase 1, phase 2, dialogues, coverage, spend."""
    p1, p2, shape, cov, spend = (
        stats.phase1_summary,
        stats.phase2,
        stats.dialogues,
        stats.coverage,
        stats.spend,
    )
    run = [
        ("phase 1 proposal rounds", p1.proposals),
        ("phase 1 accepted", p1.accepted),
        ("phase 1 removed", p1.removed),
        ("recombinations tried", p1.recombinations),
        ("recombined accepted", p1.recombined),
        ("evolving accepted", ", ".join(f"{k} {v}" for k, v in p1.evolving.items()) or "none"),
        ("mean feedback rounds", p1.mean_rounds),
        ("feedback rounds", ", ".join(f"{k}: {v}" for k, v in p1.feedback_rounds.items()) or "-"),
        ("phase 2 tasks", p2.tasks),
        ("verified dialogues", p2.dialogues),
        ("success rate", p2.success_rate),
        ("episodes", p2.episodes),
        ("attempts per task", p2.attempts_per_task),
        ("success at attempt", ", ".join(f"{k}: {v}" for k, v in p2.success_at_attempt.items()) or "-"),
        ("failures", ", ".join(f"{k} {v}" for k, v in p2.failures.items()) or "none"),
        ("tokens", spend.tokens),
        ("cost (USD)", spend.cost),
        ("tokens per dialogue", spend.tokens_per_dialogue),
        ("cost per dialogue (USD)", spend.cost_per_dialogue),
        *((f"seconds ({k})", v) for k, v in stats.seconds.items()),
    ]
    parts = [tabulate(run, headers=[f"{stats.domain} run", "value"], tablefmt=fmt)]
    if p1.acceptance:
        stages = [(a.stage, a.checked, a.passed, a.rate) for a in p1.acceptance]
        parts.append(tabulate(stages, headers=["phase 1 stage", "checked", "passed", "rate"], tablefmt=fmt))
    shapes = [
        ("turns", shape.turns.mean, shape.turns.median, shape.turns.min, shape.turns.max),
        (
            "tool calls",
            shape.tool_calls.mean,
            shape.tool_calls.median,
            shape.tool_calls.min,
            shape.tool_calls.max,
        ),
    ]
    parts.append(tabulate(shapes, headers=["per dialogue", "mean", "median", "min", "max"], tablefmt=fmt))
    sides = [(side, w.turns, w.bigrams, w.distinct_bigrams, w.distinct_2) for side, w in stats.language]
    headers = ["wording", "turns", "bigrams", "distinct bigrams", "distinct-2"]
    parts.append(tabulate(sides, headers=headers, tablefmt=fmt))
    parts.append(tabulate(list(cov.write_tools.items()), headers=["write tool", "dialogues"], tablefmt=fmt))
    parts.append(tabulate(list(cov.rules.items()), headers=["policy rule", "dialogues"], tablefmt=fmt))
    return "\n\n".join(parts)
