"""`studyd serve`: the API plus N embedded workers, all stopped by one SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from api_harness import start_server

SERVE = [sys.executable, "-m", "studyd.cli.main", "serve", "--log-level", "warning"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_serve_runs_n_workers_and_stops_them_on_sigterm(tmp_path):
    server = start_server(
        f"sqlite:///{tmp_path / 'studyd.db'}", tmp_path, command=[*SERVE, "--workers", "2"]
    )
    try:
        deadline = time.monotonic() + 120
        workers: list[dict] = []
        while time.monotonic() < deadline and len(workers) < 2:
            workers = server.client.get("/workers").json()
            time.sleep(0.5)
        assert len(workers) == 2, server.log()
        pids = [w["pid"] for w in workers]
        assert all(_alive(pid) for pid in pids)
        assert all(w["device"] for w in workers)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0, server.log()
        assert not any(_alive(pid) for pid in pids)
    finally:
        server.stop()


def test_serve_refuses_a_database_it_cannot_open_with_one_line(tmp_path):
    import subprocess

    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'studyd.db'}"
    run = subprocess.run(
        [*SERVE, "--no-workers", "--database-url", url], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert "cannot prepare the database" in run.stderr
    assert "Traceback" not in run.stderr
