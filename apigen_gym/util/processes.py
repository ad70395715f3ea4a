"""Child processes that announce readiness on standard output (``serving on URL``)."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from typing import IO

READY_PREFIX = "serving on "
_READY = re.compile(rf"^{READY_PREFIX}(\S+)")


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def wait_ready(process: subprocess.Popen[str], timeout: float, what: str) -> str:
    """The URL in the child's ``serving on URL`` line; the child is killed if it is not ready in time.

    Raises TimeoutError, or RuntimeError when the child exits first. Its later output keeps being read
    (so that it never blocks on a full pipe).
    """
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            process.wait()
            raise TimeoutError(f"{what} was not ready after {timeout} s") from None
        if line is None:
            raise RuntimeError(f"{what} exited (status {process.wait()}) before it was ready")
        ready = _READY.match(line)
        if ready:
            return ready.group(1)
