"""Shared fixtures: where the τ-bench anchors are (skipping with a reason when absent), a refusing port.

Ray runs in its single-machine mode in every test (read when ``ray`` is first imported, so set here):
each address its processes bind or dial is 127.0.0.1, not this machine's network address.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

ANCHORS = Path(__file__).resolve().parents[1].parent / "shared" / "anchors" / "tau_bench"


@pytest.fixture(scope="session")
def anchors() -> Path:
    if not ANCHORS.is_dir():
        pytest.skip(f"τ-bench anchors not found at ../shared/anchors/tau_bench (looked in {ANCHORS})")
    return ANCHORS


@pytest.fixture()
def refused_url() -> Iterator[str]:
    """A base URL on a loopback port that is bound but not listening: every connection is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        sock.close()
