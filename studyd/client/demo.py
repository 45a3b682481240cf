"""`studyd demo`: a real server on the embedded SQLite default, the bundled shoot-out, its verdict.

Everything lands in one directory (database, data, server log, report) so a second run starts
clean by deleting it, and nothing touches the user's own `studyd.db`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from studyd.client.readiness import (
    ProcessExited,
    answers_health,
    free_port,
    start_process,
    stop_process,
)
from studyd.client.rest import ClientError, StudydClient

SPEC_NAME = "shootout.yaml"
STARTUP_SECONDS = 120.0
STOP_SECONDS = 30.0


class DemoError(RuntimeError):
    """The demo could not run (server would not start, spec missing); one readable line."""


@dataclass
class DemoServer:
    """A `studyd serve` subprocess the demo started (and stops)."""

    process: subprocess.Popen[bytes]
    url: str
    database_url: str
    log_path: Path


def _tail(log_path: Path, lines: int = 15) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def bundled_spec() -> Path:
    """The shoot-out spec: packaged beside studyd, or in the checkout's `examples/`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "examples" / SPEC_NAME, here.parent / "examples" / SPEC_NAME):
        if candidate.is_file():
            return candidate
    raise DemoError(f"the bundled spec {SPEC_NAME} is missing from this install")


def start_server(directory: Path, *, port: int | None = None, workers: int = 1) -> DemoServer:
    """Start `studyd serve` on `directory/studyd.db` and wait until its API answers."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    database_url = f"sqlite:///{(directory / 'studyd.db').resolve()}"
    env = {
        **os.environ,
        "STUDYD_DATABASE_URL": database_url,
        "STUDYD_DATA_DIR": str((directory / "data").resolve()),
    }
    env.pop("STUDYD_API_TOKEN", None)  # the demo's server is local and open on 127.0.0.1 only
    # Small MLPs gain nothing from intra-op threads, and N workers × N OpenMP threads on N cores
    # spin against each other: one thread per worker ran a digits trial ~20× faster here.
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [sys.executable, "-m", "studyd.cli.main", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    log_path = directory / "server.log"
    url = f"http://127.0.0.1:{port}"
    try:
        process = start_process(
            command, log_path, ready=lambda: answers_health(url), timeout=STARTUP_SECONDS, env=env
        )
    except ProcessExited as exc:
        raise DemoError(
            f"`studyd serve` exited with code {exc.process.returncode}; "
            f"last lines of {log_path}:\n{_tail(log_path)}"
        ) from exc
    except TimeoutError as exc:
        raise DemoError(
            f"`studyd serve` did not answer within {STARTUP_SECONDS:.0f}s (see {log_path})"
        ) from exc
    return DemoServer(process, url, database_url, log_path)


def stop_server(server: DemoServer) -> int | None:
    """SIGTERM (workers finish or fail their trial cleanly), then SIGKILL if it hangs."""
    return stop_process(server.process, STOP_SECONDS)


@contextmanager
def running_server(
    directory: Path, *, port: int | None = None, workers: int = 1, keep_serving: bool = False
) -> Iterator[DemoServer]:
    """A demo server for the block; stopped afterwards unless `keep_serving` (then waited on)."""
    # SIGTERM (a service manager, `kill`) must stop the server too, not orphan it.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server = start_server(directory, port=port, workers=workers)
        try:
            yield server
            if keep_serving:
                with suppress(KeyboardInterrupt):
                    server.process.wait()
        finally:
            stop_server(server)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def submit_bundled(api: StudydClient, spec_path: Path) -> dict:
    import yaml

    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    try:
        return api.submit(spec)
    except ClientError as exc:
        raise DemoError(f"the server refused {spec_path}: {exc.message}") from exc
