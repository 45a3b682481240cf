"""The API server a bench drives: `studyd serve --no-workers` in its own process, and what the
bench reads of that process (CPU seconds, RSS, idleness) and of the machine (load average)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from studyd.client.readiness import (
    ProcessExited,
    answers_health,
    free_port,
    start_process,
    stop_process,
)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(url: str) -> Iterator[tuple[str, int]]:
    """`studyd serve --no-workers` on `url`; yields (base URL, its pid)."""
    port = free_port()
    env = {**os.environ, "STUDYD_DATABASE_URL": url}
    env.pop("STUDYD_API_TOKEN", None)  # no auth: the bench measures the routes
    command = [sys.executable, "-m", "studyd.cli.main", "serve", "--no-workers"]
    command += ["--port", str(port), "--log-level", "warning"]
    # Its log (uvicorn, Optuna's per-request study notices) would drown the figures.
    log = Path(tempfile.gettempdir()) / f"studyd-api-load-serve-{port}.log"
    base = f"http://127.0.0.1:{port}"
    try:
        proc = start_process(command, log, ready=lambda: answers_health(base), timeout=60, env=env)
    except (ProcessExited, TimeoutError) as exc:
        raise RuntimeError(f"studyd serve did not come up ({exc}); see {log}") from exc
    try:
        yield base, proc.pid
    finally:
        stop_process(proc, timeout=30)


def load_average() -> str:
    """The 1-minute load average: other jobs on the machine share its cores with the bench."""
    return f"{os.getloadavg()[0]:.2f}"


def settle(pid: int, timeout: float = 30.0) -> None:
    """Wait until the API process is idle: wrk stops with requests still in flight, and the
    server's work on them would be charged to the next measurement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cpu = cpu_seconds(pid)
        time.sleep(0.3)
        if cpu_seconds(pid) - cpu < 0.01:
            return
