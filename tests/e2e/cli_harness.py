"""Helpers for the CLI tests: a real `studyd serve` process and `studyd ...` subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from studyd.client.readiness import (  # noqa: F401 - the CLI tests import free_port from here
    ProcessExited,
    answers_health,
    free_port,
    start_process,
    stop_process,
)

TOKEN = "cli-test-token-7c1f"
STUDYD = Path(sys.executable).with_name("studyd")
TINY_SPEC = """\
name: cli-tiny
dataset: {name: digits}
model: {depth: 1, width: 32}
dropout:
  variants: [none, standard]
  rate: [0.1, 0.5]
training: {epochs: 2, batch_size: 64}
search:
  n_trials: 4
  pruner: {name: none}
"""


@dataclass
class Server:
    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_server(directory: Path, *, workers: int, token: str | None = TOKEN) -> Server:
    """`studyd serve` as its own process on a fresh SQLite file; waits for /healthz."""
    port = free_port()
    database_url = f"sqlite:///{directory / 'studyd.db'}"
    env = {**os.environ, "STUDYD_DATABASE_URL": database_url}
    env["STUDYD_DATA_DIR"] = str(directory / "data")
    env.pop("STUDYD_API_TOKEN", None)
    env.setdefault("OMP_NUM_THREADS", "1")  # 2 workers × 2 OpenMP threads on 2 cores thrash
    if token:
        env["STUDYD_API_TOKEN"] = token
    command = [str(STUDYD), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)] if workers else ["--no-workers"]
    log = directory / "server.log"
    url = f"http://127.0.0.1:{port}"
    try:
        process = start_process(
            command, log, ready=lambda: answers_health(url), timeout=90, env=env
        )
    except ProcessExited as exc:
        pytest.fail(f"studyd serve exited {exc.process.returncode}:\n{log.read_text()[-3000:]}")
    except TimeoutError:
        pytest.fail(f"studyd serve did not answer in 90 s:\n{log.read_text()[-3000:]}")
    return Server(url, database_url, process, log)


def stop_server(server: Server) -> None:
    stop_process(server.process, timeout=30)


def studyd(
    *args: str, url: str | None, token: str | None = TOKEN, timeout: float = 60, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """Run `studyd ARGS` as a user would, with the URL and token from the environment, on a
    terminal `columns` wide."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STUDYD_")}
    env["COLUMNS"] = str(columns)
    if url:
        env["STUDYD_URL"] = url
    if token:
        env["STUDYD_API_TOKEN"] = token
    return subprocess.run(
        [str(STUDYD), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def parsed(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # --json prints the JSON and nothing else


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]
