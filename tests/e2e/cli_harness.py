"""Helpers for the CLI tests: a real `studyd serve` process (serve_harness) and `studyd ...`
subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import serve_harness
from serve_harness import Server, free_port  # noqa: F401 - the CLI tests import them from here

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


def start_server(directory: Path, *, workers: int, token: str | None = TOKEN) -> Server:
    """`studyd serve` as its own process on a fresh SQLite file; waits for /healthz."""
    command = [str(STUDYD), "serve", "--host", "127.0.0.1"]
    command += ["--workers", str(workers)] if workers else ["--no-workers"]
    env = {
        "STUDYD_DATA_DIR": str(directory / "data"),
        # 2 workers × 2 OpenMP threads on 2 cores thrash
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    url = f"sqlite:///{directory / 'studyd.db'}"
    return serve_harness.start_server(
        url, directory, token=token, env=env, command=command, timeout=90
    )


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
