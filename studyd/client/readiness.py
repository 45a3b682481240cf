"""Waiting for processes one started (a server, workers) to be ready, noticing any that died."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence


class ProcessExited(RuntimeError):
    """A process exited before it was ready; `process` is the one that did."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        super().__init__(f"exited with {process.returncode} before it was ready")
        self.process = process


def wait_until_ready(
    ready: Callable[[], bool],
    processes: Sequence[subprocess.Popen[bytes]],
    *,
    timeout: float,
    every: float = 0.1,
) -> None:
    """Poll `ready` until it is true; `ProcessExited` when one of `processes` exits first,
    `TimeoutError` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        for process in processes:
            if process.poll() is not None:
                raise ProcessExited(process)
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {timeout}s")
        time.sleep(every)
