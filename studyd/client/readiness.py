"""Starting local processes (a server, a proxy, workers), waiting until they are ready, noticing
any that died, and stopping them: one helper for the demo, the benches and the tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

import httpx

Ready = TypeVar("Ready")


class ProcessExited(RuntimeError):
    """A process exited before it was ready; `process` is the one that did."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        super().__init__(f"exited with {process.returncode} before it was ready")
        self.process = process


def wait_until_ready(
    ready: Callable[[], Ready],
    processes: Sequence[subprocess.Popen[bytes]],
    *,
    timeout: float,
    every: float = 0.1,
) -> Ready:
    """Poll `ready` until it returns something true, and return that; `ProcessExited` when one of
    `processes` exits first, `TimeoutError` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := ready()):
        for process in processes:
            if process.poll() is not None:
                raise ProcessExited(process)
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {timeout}s")
        time.sleep(every)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers_health(url: str) -> bool:
    """True when the studyd API at `url` answers `GET /healthz` with 200."""
    try:
        return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def listens(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on `port` (a gRPC proxy has no /healthz)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def start_process(
    command: Sequence[str],
    log_path: Path,
    *,
    ready: Callable[[], object],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`command` with stdout and stderr in `log_path`, returned once `ready()` is true.

    Raises `ProcessExited` or `TimeoutError` as `wait_until_ready` does; after a timeout the
    process is stopped first.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), env=None if env is None else dict(env), cwd=cwd, stdout=log, stderr=log
        )
    try:
        wait_until_ready(ready, [process], timeout=timeout)
    except BaseException:
        stop_process(process)
        raise
    return process


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM (after SIGCONT, in case it was stopped), then SIGKILL after `timeout` seconds."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
