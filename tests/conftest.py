"""Shared fixtures: where the τ-bench anchors are, and skipping with a reason when they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ANCHORS = Path(__file__).resolve().parents[1].parent / "shared" / "anchors" / "tau_bench"


@pytest.fixture(scope="session")
def anchors() -> Path:
    if not ANCHORS.is_dir():
        pytest.skip(f"τ-bench anchors not found at ../shared/anchors/tau_bench (looked in {ANCHORS})")
    return ANCHORS
