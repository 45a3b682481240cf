"""`studyd serve` for the API and reliability tests: the app in this process over a real database
(`in_process_api`), or a real process waited on until /healthz (`start_server`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from storage.migrate import ensure_schema
from studyd.client.readiness import (  # noqa: F401 - the harnesses import them from here
    ProcessExited,
    answers_health,
    free_port,
    start_process,
    stop_process,
)
from studyd.settings import Settings

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 60.0
SERVE = [sys.executable, "-m", "studyd.cli.main", "serve", "--no-workers", "--log-level", "warning"]


@dataclass
class Api:
    """The studyd app served in this process (its lifespan run) and a client for it.

    `client` carries the token when the app has one; `anonymous()` is a client without it.
    """

    app: FastAPI
    client: TestClient
    database_url: str

    def anonymous(self) -> TestClient:
        # Not entered as a context: that would run the lifespan (and close the app) once more.
        return TestClient(self.app)


@contextmanager
def in_process_api(database_url: str, *, migrate: bool = True, **settings: Any) -> Iterator[Api]:
    """`create_app` over `database_url`, migrated first as `studyd serve` does (unless not
    `migrate`); `settings` are Settings fields (api_token, max_body_bytes, data_roots, ...)."""
    if migrate:
        ensure_schema(database_url)
    app = create_app(Settings(database_url=database_url, **settings))
    token = settings.get("api_token")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # Entered, the client runs the lifespan (thread limit, the summary modules' warm-up thread).
    with TestClient(app, headers=headers) as client:
        yield Api(app, client, database_url)


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

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` s (a serve stops its workers first)."""
        self.client.close()
        return stop_process(self.process, timeout=timeout)

    def healthy(self) -> bool:
        return answers_health(self.url)


def start_server(
    database_url: str,
    log_dir: Path,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    timeout: float = STARTUP_SECONDS,
) -> Server:
    """`studyd serve --no-workers` (or `command`) on a free port, waited on until /healthz
    (`timeout` seconds at most)."""
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
            args, log_path, ready=lambda: answers_health(url), timeout=timeout,
            env=full_env, cwd=REPO,
        )  # fmt: skip
    except ProcessExited as exc:
        log = log_path.read_text(errors="replace")[-6000:]
        raise RuntimeError(f"server exited with {exc.process.returncode}:\n{log}") from exc
    except TimeoutError as exc:
        log = log_path.read_text(errors="replace")[-6000:]
        raise RuntimeError(f"server did not start in {timeout}s:\n{log}") from exc
    return Server(url, database_url, process, log_path, token)
