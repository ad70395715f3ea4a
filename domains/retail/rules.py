"""Executable retail policy rules."""

from __future__ import annotations

from apigen_gym.policy import Rule

RULES: list[Rule] = []
