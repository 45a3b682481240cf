"""`studyd serve`: the API plus N embedded workers, all stopped by one SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time

import pytest
from serve_harness import start_server

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
@pytest.mark.process
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


# One stack per slot of this study whatever K is: depth and width fixed (models.batched).
SETTINGS_SPEC = {
    "name": "serve-settings",
    "dataset": "digits",
    "model": {"depth": 1, "width": 8},
    "dropout": {"variants": ["standard"], "placements": ["hidden"], "rate": 0.2},
    "training": {"epochs": 1, "batch_size": 64},
    "search": {"sampler": "random", "pruner": "none", "n_trials": 2},
}


@pytest.mark.slow
@pytest.mark.process
def test_serve_gives_its_workers_the_environment_s_settings_with_its_flags_on_top(tmp_path):
    env = {
        "STUDYD_WORKER_DEVICE": "cpu",
        "STUDYD_HEARTBEAT_INTERVAL": "0.2",
        "STUDYD_WORKER_BATCH_TRIALS": "3",  # --worker-batch-trials 2 below wins
        "STUDYD_DATA_DIR": str(tmp_path / "data"),
    }
    command = [*SERVE, "--workers", "1", "--worker-batch-trials", "2"]
    server = start_server(f"sqlite:///{tmp_path / 'studyd.db'}", tmp_path, env=env, command=command)
    try:
        created = server.client.post("/studies", json=SETTINGS_SPEC)
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]
        deadline = time.monotonic() + 240
        while server.client.get(f"/studies/{study_id}").json()["state"] != "done":
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.5)
        # A worker holds one row per slot of its stack (its own and K - 1 leases of it), kept
        # until it stops: K = 2 is two rows of one pid, the environment's 3 would be three.
        # /workers shows the process once.
        workers = server.client.get("/workers").json()
        assert len(workers) == 1, workers
        with sqlite3.connect(tmp_path / "studyd.db") as db:
            rows = db.execute("SELECT pid, lease_of FROM studyd_workers").fetchall()
        assert len(rows) == 2 and {pid for pid, _ in rows} == {workers[0]["pid"]}, rows
        assert sorted(lease for _, lease in rows if lease is not None) == [workers[0]["id"]]
        assert {w["device"] for w in workers} == {"cpu"}
        # Heartbeats every 0.2 s (STUDYD_HEARTBEAT_INTERVAL), not every 5 s (the default).
        beats: set[str] = set()
        until = time.monotonic() + 4
        while time.monotonic() < until:
            beats |= {w["last_heartbeat"] for w in server.client.get("/workers").json()}
            time.sleep(0.1)
        assert len(beats) >= 8, beats
    finally:
        server.stop()


@pytest.mark.process
def test_serve_refuses_a_database_it_cannot_open_with_one_line(tmp_path):
    import subprocess

    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'studyd.db'}"
    run = subprocess.run(
        [*SERVE, "--no-workers", "--database-url", url], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert "cannot use the database" in run.stderr
    assert "Traceback" not in run.stderr
