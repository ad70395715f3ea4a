"""Running coroutines from synchronous code, on one background event loop shared by the process.

LLM users and agents are asynchronous; a plain ``env.step`` is not. Their synchronous methods run
the coroutine on this loop, so HTTP connection pools (bound to a loop) are reused across calls.

The loop is per process: a child made by ``fork`` (``AsyncVectorEnv``, ``multiprocessing``) inherits
the parent's loop object but not the thread that runs it, so the child forgets it and starts its own
on first use.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()
_inherited: list[asyncio.AbstractEventLoop] = []
"""Loops inherited across fork, kept (never run, never closed) so that none is collected mid-run."""


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="apigen-gym-aio", daemon=True).start()
        return _loop


def _forget_parent_loop() -> None:
    """In a forked child: the parent's loop has no thread here; the next call starts a new one."""
    global _loop, _lock
    if _loop is not None:
        _inherited.append(_loop)
    _loop = None
    _lock = threading.Lock()  # another parent thread may have held it at the fork


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_parent_loop)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on the background loop and return its result."""
    return asyncio.run_coroutine_threadsafe(coroutine, _background_loop()).result()
