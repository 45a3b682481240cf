"""`studyd serve` as a real process for the API and reliability tests, waited on until /healthz."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from studyd.client.readiness import (  # noqa: F401 - the harnesses import them from here
    ProcessExited,
    answers_health,
    free_port,
    start_process,
    stop_process,
)

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 60.0
SERVE = [sys.executable, "-m", "studyd.cli.main", "serve", "--no-workers", "--log-level", "warning"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any STUDYD_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDYD_")}
    env["PYTHONPATH"] = str(REPO)
    return env | extra


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
        return answers_health(self.url)


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
    url = f"http://127.0.0.1:{port}"
    try:
        process = start_process(
            args, log_path, ready=lambda: answers_health(url), timeout=STARTUP_SECONDS,
            env=full_env, cwd=REPO,
        )  # fmt: skip
    except ProcessExited as exc:
        log = log_path.read_text(errors="replace")[-6000:]
        raise RuntimeError(f"server exited with {exc.process.returncode}:\n{log}") from exc
    except TimeoutError as exc:
        log = log_path.read_text(errors="replace")[-6000:]
        raise RuntimeError(f"server did not start in {STARTUP_SECONDS}s:\n{log}") from exc
    return Server(url, database_url, process, log_path, token)
