"""Issue 27 items 1 and 6: a database outage longer than the heartbeat grace and than serve's
quick-death sequence, mid-study, under `studyd serve --workers 2`, on PostgreSQL (a private
cluster really stopped with `pg_ctl stop`) and on SQLite (the file locked by another process).

Scaled timeline (the issue's is a ≥ 120 s outage against the defaults, grace 30 s):
- grace 3 s (STUDYD_HEARTBEAT_GRACE), heartbeat 0.5 s, reaper every 0.5 s; SQLite's busy
  timeout 1 s (STUDYD_SQLITE_BUSY_TIMEOUT), so a locked file answers "database is locked"
  like a stopped server answers "connection refused";
- the outage starts while a trial trains and lasts OUTAGE_S = 15 s = 5 × grace (the issue's
  120 s is 4 × 30 s). Before the fix each worker exited 3 at the grace (3 s), serve restarted it
  after 0.5 s, the restart crashed at start on the database (exit 1), again after 1 s, and serve
  gave the worker up for good after 3 quick deaths: about 5 s, well inside the outage, so the
  quick-death window (300 s, counted per death) is passed through as in the issue.
- After: the study must reach `done` with every trial counted once, nothing RUNNING or WAITING,
  both workers alive (serve never restarted), no trial reaped as "stopped heartbeating" (the
  trial held through the outage trained on and is COMPLETE), no traceback in the log.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable

import optuna
import pytest
from reliability_harness import (
    PrivatePostgres,
    Server,
    serve_with_workers,
    start_worker,
    stop_process,
    wait_for,
)

from storage.engine import make_engine
from storage.migrate import upgrade
from storage.optuna_storage import make_optuna_storage
from storage.queue import list_workers
from storage.queue.reaper import REAPED_ERROR

pytestmark = [pytest.mark.slow, pytest.mark.process]

# The issue's own timeline, 150 s down against the default 30 s grace (about 3 minutes a
# backend): STUDYD_TEST_GRACE_S=30 STUDYD_TEST_OUTAGE_S=150 pytest this file.
GRACE_S = float(os.environ.get("STUDYD_TEST_GRACE_S", "3"))
OUTAGE_S = float(os.environ.get("STUDYD_TEST_OUTAGE_S", str(5 * GRACE_S)))
N_TRIALS = 6
OUTAGE_ENV = {
    "STUDYD_HEARTBEAT_GRACE": str(GRACE_S),
    "STUDYD_SQLITE_BUSY_TIMEOUT": "1",
}


def outage_spec() -> dict:
    """Trials of a few seconds on one CPU thread: long enough to be cut by the outage."""
    return {
        "name": "long-outage",
        "dataset": {"name": "digits", "train_subset": 300},
        "model": {"depth": 1, "width": [8, 32]},
        "dropout": {"variants": ["standard"], "placements": ["hidden"], "rate": [0.1, 0.5]},
        "training": {"epochs": 30, "batch_size": 32},
        "search": {"n_trials": N_TRIALS, "sampler": "random", "pruner": "none"},
    }


def ride_out(server: Server, outage: Callable[[], None], figure) -> None:
    """Start the study, run `outage()` while a trial trains, then check it all ends well."""
    client = server.client
    wait_for(lambda: len(_alive(server)) == 2, 240, what="2 embedded workers")
    study = client.post("/studies", json=outage_spec()).json()
    wait_for(lambda: _running_trials(server, study["id"]), 120, every=0.2, what="a trial training")
    down_at = time.monotonic()
    outage()
    back_at = time.monotonic()
    done = wait_for(lambda: _done(server, study["id"]), 120, every=0.5, what="the study done")
    finished_s = time.monotonic() - back_at
    workers = client.get("/workers").json()
    storage = make_optuna_storage(server.database_url)
    trials = optuna.load_study(study_name=study["optuna_name"], storage=storage).trials
    states = Counter(t.state.name for t in trials)
    reaped = [t.number for t in trials if t.user_attrs.get("error") == REAPED_ERROR]
    failed = [
        (t.number, t.user_attrs.get("error"), len(t.intermediate_values))
        for t in trials
        if t.state.name == "FAIL"
    ]
    figure(
        outage_s=round(back_at - down_at, 1),
        grace_s=GRACE_S,
        done_after_outage_s=round(finished_s, 1),
        states=dict(states),
        reaped_trials=len(reaped),
        failed=failed,
        workers=[(w["state"], w.get("restarts")) for w in workers],
    )
    log = server.log()
    assert done["state"] == "done" and done["finished"] == N_TRIALS, (done, log)
    assert states["COMPLETE"] + states["PRUNED"] == N_TRIALS, states
    assert not states["RUNNING"] and not states["WAITING"], states
    assert [w["state"] for w in workers] == ["alive", "alive"], (workers, log)
    assert not reaped, (reaped, log)
    assert "Traceback" not in log, log


def _alive(server: Server) -> list[dict]:
    return [w for w in server.client.get("/workers").json() if w["state"] == "alive"]


def _running_trials(server: Server, study_id: int) -> bool:
    """A trial trains now, after one finished (the workers are warm: the outage cuts a trial)."""
    counts = server.client.get(f"/studies/{study_id}").json()["trial_counts"]
    return counts["running"] > 0 and counts["complete"] > 0


def _done(server: Server, study_id: int) -> dict | None:
    try:
        study = server.client.get(f"/studies/{study_id}").json()
    except Exception:  # noqa: BLE001 - the server may still be catching up: ask again
        return None
    return study if study.get("state") in ("done", "failed", "cancelled") else None


@pytest.mark.postgres
def test_a_postgres_outage_past_the_grace_ends_in_a_done_study_and_live_workers(
    private_postgres: PrivatePostgres, tmp_path, figure
):
    server = serve_with_workers(private_postgres.create_database(), tmp_path, **OUTAGE_ENV)

    def stopped() -> None:
        private_postgres.stop()
        try:
            time.sleep(OUTAGE_S)
        finally:
            private_postgres.start()

    try:
        ride_out(server, stopped, figure)
    finally:
        server.stop()


def test_a_locked_sqlite_file_past_the_grace_ends_in_a_done_study_and_live_workers(
    tmp_path, figure
):
    path = tmp_path / "studyd.db"
    server = serve_with_workers(f"sqlite:///{path}", tmp_path, **OUTAGE_ENV)

    def locked() -> None:
        holder = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            time.sleep(OUTAGE_S)
            holder.execute("COMMIT")
        finally:
            holder.close()

    try:
        ride_out(server, locked, figure)
    finally:
        server.stop()


def test_an_embedded_worker_started_in_an_outage_waits_for_the_database(tmp_path):
    """What serve's restart of a worker met before the fix: a database still down at start.
    The worker is "embedded" (STUDYD_WORKER_PARENT_PID is this test's pid); it must wait (one
    line, no traceback, alive past 2 × grace) and register once the lock is gone."""
    path = tmp_path / "studyd.db"
    url = f"sqlite:///{path}"
    upgrade(url)  # serve made the schema before it started its workers
    log = tmp_path / "worker.log"
    holder = sqlite3.connect(path, timeout=30, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    env = OUTAGE_ENV | {"STUDYD_WORKER_PARENT_PID": str(os.getpid())}
    worker = start_worker(url, log, grace=GRACE_S, env=env)
    engine = make_engine(url)
    try:
        wait_for(
            lambda: "waiting" in log.read_text() or worker.poll() is not None,
            240,
            every=0.2,
            what="the wait line (or the worker's death)",
        )
        time.sleep(2 * GRACE_S)
        alive_in_outage = worker.poll() is None
        holder.execute("COMMIT")
        wait_for(lambda: list_workers(engine), 60, every=0.2, what="the worker to register")
        alive_after = worker.poll() is None
    finally:
        holder.close()
        stop_process(worker)
        engine.dispose()
    text = log.read_text(errors="replace")
    assert alive_in_outage and alive_after, text[-3000:]
    assert text.count("the database is unreachable") == 1, text[-3000:]
    assert "the database answers after" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
