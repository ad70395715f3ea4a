"""Running coroutines from synchronous code, on one background event loop shared by the process.

LLM users and agents are asynchronous; a plain ``env.step`` is not. Their synchronous methods run
the coroutine on this loop, so HTTP connection pools (bound to a loop) are reused across calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="apigen-gym-aio", daemon=True).start()
        return _loop


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on the background loop and return its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, _background_loop()).result()
