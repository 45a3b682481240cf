"""A cluster on one machine: PostgreSQL, `studyd serve --no-workers`, workers, `studyd proxy`.

Every component is a separate OS process started from the `studyd` command, the way machines of a
cluster would run them; the test talks to them over HTTP and gRPC only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

from storage.optuna_storage import make_optuna_storage

STUDYD = [sys.executable, "-m", "studyd.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before listening:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing listened on {port} within {timeout}s:\n{log.read_text()}")


@contextmanager
def studyd_process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator:
    """`studyd ARGS` as its own OS process; SIGTERM (then SIGKILL) on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*STUDYD, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def proxy_process(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / f"proxy-{port}.log"
    args = ["proxy", "--database-url", database_url, "--host", "127.0.0.1", "--port", str(port)]
    with studyd_process(args, log) as process:
        wait_for_port(port, process, log)
        yield f"grpc://127.0.0.1:{port}"


def test_proxy_serves_optuna_studies_that_land_in_the_database(sqlite_url, tmp_path):
    with proxy_process(sqlite_url, tmp_path) as grpc_url:
        via_proxy = make_optuna_storage(grpc_url)
        study = optuna.create_study(study_name="through-proxy", storage=via_proxy)
        study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=5)
        best_via_proxy = study.best_value
    direct = optuna.load_study(study_name="through-proxy", storage=make_optuna_storage(sqlite_url))
    states = [t.state for t in direct.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 5
    assert direct.best_value == best_via_proxy


def test_proxy_refuses_to_proxy_another_proxy(tmp_path):
    result = subprocess.run(
        [*STUDYD, "proxy", "--database-url", "grpc://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not another proxy" in result.stderr
