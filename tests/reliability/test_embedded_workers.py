"""Issue 15 items 2 and 3: `studyd serve` supervises the workers it embeds, and they never
outlive it.

Real processes on a SQLite file (heartbeat 0.5 s):
- an embedded worker killed with SIGKILL is restarted (a new pid heartbeats);
- one that keeps dying at start is restarted with backoff, then given up on: /workers lists it
  as `failed` with its exit code and the log says so (no hot loop);
- `kill -9` of serve: its worker notices within a heartbeat, fails its trial cleanly (reason
  recorded), gives the slot back and unregisters; a new `serve --workers 1` shows one worker;
- a standalone `studyd worker` whose parent exits keeps serving (only embedded workers watch).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from reliability_harness import (
    REPO,
    WORKER_ENV,
    clean_env,
    embedded_pids,
    serve_with_workers,
    trainable_spec,
    wait_for,
)

from storage.engine import make_engine
from storage.migrate import upgrade
from storage.optuna_storage import make_optuna_storage
from storage.queue import get_study, list_workers
from studyd.daemon.embedded import MAX_QUICK_DEATHS

pytestmark = [pytest.mark.slow, pytest.mark.process]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by its new parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_serve_restarts_a_killed_worker_and_gives_up_on_one_that_keeps_dying(tmp_path):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    server = serve_with_workers(url, tmp_path, workers=1)
    try:
        (pid,) = wait_for(lambda: embedded_pids(server), 120, what="the embedded worker")
        os.kill(pid, signal.SIGKILL)
        new = wait_for(
            lambda: embedded_pids(server) - {pid}, 180, every=0.2, what="a restarted worker"
        )
        assert len(new) == 1 and alive(next(iter(new)))
        assert "restarted" in server.log()
    finally:
        server.stop()

    # A worker that cannot start (no such device) dies at once, every time. A database of its
    # own: the SIGKILLed worker's row above is listed (as alive) until a reaper removes it, a
    # grace after its last heartbeat, and a refused device now dies within that grace.
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad_url = f"sqlite:///{bad_dir / 'studyd.db'}"
    bad = serve_with_workers(bad_url, bad_dir, workers=1, STUDYD_WORKER_DEVICE="cuda:99")
    try:

        def given_up() -> dict | None:
            down = [w for w in bad.client.get("/workers").json() if w["state"] == "failed"]
            return down[0] if down else None

        # Five starts of a Python process that imports torch: minutes on a loaded machine.
        report = wait_for(given_up, 400, every=0.5, what="the worker to be given up on")
        assert report["restarts"] == MAX_QUICK_DEATHS - 1
        assert report["last_exit_code"] == 2
        assert report["id"] is None and report["pid"] is None
        time.sleep(3.0)  # not restarted any more
        assert bad.client.get("/workers").json() == [report]
        assert "not restarted" in bad.log()
    finally:
        bad.stop()


def test_kill_9_of_serve_leaves_no_worker_behind(tmp_path):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    engine = make_engine(url)
    server = serve_with_workers(url, tmp_path, workers=1)
    try:
        study = server.client.post(
            "/studies", json=trainable_spec("long", 2, variants=["standard"], width=16, epochs=400)
        ).json()
        rows = wait_for(
            lambda: [w for w in list_workers(engine) if w.trial_id is not None],
            300,
            every=0.2,
            what="the worker training",
        )
        worker_pid = rows[0].pid
        server.process.kill()  # kill -9: no chance to stop its workers
        server.process.wait()
        killed_at = time.monotonic()
        # Stopped cleanly (unregistered) within a heartbeat or so; the process then exits
        # (a Python process with torch loaded takes seconds to exit on a loaded machine).
        wait_for(lambda: not list_workers(engine), 30, every=0.1, what="the orphan to unregister")
        stopped_s = time.monotonic() - killed_at
        wait_for(lambda: not alive(worker_pid), 60, every=0.2, what="the orphan to exit")
    finally:
        server.client.close()
    # It stopped cleanly: row gone, slot given back, trial FAIL with its reason.
    assert list_workers(engine) == []
    record = get_study(engine, study["id"])
    assert record.claimed == record.finished == 0, record
    trials = optuna.load_study(
        study_name=study["optuna_name"], storage=make_optuna_storage(url)
    ).trials
    assert [t.state.name for t in trials] == ["FAIL"]
    assert trials[0].user_attrs["error"].startswith("worker stopped")
    assert stopped_s < 10, stopped_s

    again = serve_with_workers(url, tmp_path, workers=1)
    try:
        wait_for(lambda: embedded_pids(again), 180, what="the new worker")
        time.sleep(2.0)
        assert len(again.client.get("/workers").json()) == 1
    finally:
        again.stop()


def test_a_standalone_worker_outlives_its_parent(tmp_path):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    upgrade(url)
    engine = make_engine(url)
    # `sh` starts the worker in the background and exits: the worker is orphaned at once.
    log = tmp_path / "worker.log"
    args = [sys.executable, "-m", "studyd.cli.main", "worker", "--device", "cpu"]
    args += ["--database-url", url, "--heartbeat", "0.5", "--poll", "0.1"]
    env = clean_env(**{k: v for k, v in WORKER_ENV.items() if k != "STUDYD_WORKER_DEVICE"})
    command = " ".join(f"'{a}'" for a in args) + f" >'{log}' 2>&1 & echo $!"
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, cwd=REPO)
    pid = int(out.stdout.strip())
    try:
        wait_for(lambda: [w for w in list_workers(engine) if w.pid == pid], 180, what="register")
        time.sleep(3.0)
        assert alive(pid), log.read_text()
        assert [w.pid for w in list_workers(engine, alive_within=10.0)] == [pid]
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), 30, what="the worker to stop")
