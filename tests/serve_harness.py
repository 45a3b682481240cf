"""`studyd serve` as a real process for the API and reliability tests, waited on until /healthz."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from studyd.client.readiness import ProcessExited, wait_until_ready

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 60.0
SERVE = [sys.executable, "-m", "studyd.cli.main", "serve", "--no-workers", "--log-level", "warning"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any STUDYD_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDYD_")}
    env["PYTHONPATH"] = str(REPO)
    return env | extra


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM (after SIGCONT, in case a test stopped it), then SIGKILL after `timeout`."""
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


@dataclass
class Server:
    """A running server process and a client for it."""

    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    token: str | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> int:
        self.client.close()
        return stop_process(self.process)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


def start_server(
    database_url: str,
    log_dir: Path,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> Server:
    """`studyd serve --no-workers` (or `command`) on a free port, waited on until /healthz."""
    port = free_port()
    full_env = clean_env(STUDYD_DATABASE_URL=database_url)
    if token:
        full_env["STUDYD_API_TOKEN"] = token
    full_env |= env or {}
    args = [*(command or SERVE), "--port", str(port)]
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=REPO, env=full_env, stdout=log, stderr=log)
    server = Server(f"http://127.0.0.1:{port}", database_url, process, log_path, token)
    try:
        wait_until_ready(server.healthy, [process], timeout=STARTUP_SECONDS)
    except ProcessExited as exc:
        raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}") from exc
    except TimeoutError as exc:
        server.stop()
        raise RuntimeError(f"server did not start in {STARTUP_SECONDS}s:\n{server.log()}") from exc
    return server
