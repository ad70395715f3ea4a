"""A generation run's folder: one JSONL file per stage, appended and flushed, read back to resume.

Layout of ``RUN/``::

    config.json                 the run's settings (domain, models, seeds, versions)
    phase1/proposals.jsonl      every blueprint proposed, with each validator's verdict
    phase1/accepted.jsonl       accepted tasks (apigen_gym.core.task.Task rows, provenance in meta)
    phase1/removed.jsonl        accepted tasks later removed (duplicate, overlap with an eval split)
    phase2/dialogues.jsonl      verified dialogues (reward 1)
    phase2/failures.jsonl       the other episodes, labelled
    stats.json                  counts and rates of every stage
"""

from __future__ import annotations

from pathlib import Path

from apigen_gym.util.jsonio import JsonlAppender, read_models

__all__ = ["JsonlAppender", "RunPaths", "read_models"]


class RunPaths:
    """Where each stage of a run lives."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.proposals = self.root / "phase1" / "proposals.jsonl"
        self.accepted = self.root / "phase1" / "accepted.jsonl"
        self.removed = self.root / "phase1" / "removed.jsonl"
        self.dialogues = self.root / "phase2" / "dialogues.jsonl"
        self.failures = self.root / "phase2" / "failures.jsonl"
        self.stats = self.root / "stats.json"
