"""Issue 27 item 1, serve's side: the "3 quick deaths and it is given up" rule never counts a
worker that exited 3 (reaped, or lost its database), however fast and often: the database's
fault is not the worker's. Real child processes stand in for the worker (one that exits at once
with the code under test), so the supervisor's own bookkeeping is what is tested, in
milliseconds instead of torch imports."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from studyd.daemon.embedded import MAX_QUICK_DEATHS, EmbeddedWorker, EmbeddedWorkers
from studyd.settings import Settings

pytestmark = pytest.mark.process


def deaths(code: int, times: int) -> EmbeddedWorker:
    """One slot whose process exits `code` at once, `times` times in a row, as serve sees it."""
    supervisor = EmbeddedWorkers(1, Settings())
    worker = EmbeddedWorker(0)
    for _ in range(times):
        worker.process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
        worker.started = time.monotonic()
        worker.process.wait(30)
        supervisor._tend(worker)  # notices the death: restart scheduled, or given up
        if worker.given_up:
            break
    return worker


@pytest.mark.parametrize("times", [MAX_QUICK_DEATHS, 2 * MAX_QUICK_DEATHS])
def test_exits_for_a_lost_database_are_never_quick_deaths(times):
    worker = deaths(3, times)
    assert not worker.given_up and worker.quick_deaths == 0
    assert worker.restart_at is not None  # restarted: the restart waits for the database
    assert worker.report()["state"] == "restarting"


def test_other_quick_deaths_still_give_a_worker_up():
    worker = deaths(1, MAX_QUICK_DEATHS)
    assert worker.given_up and worker.report() == {
        "state": "failed",
        "restarts": 0,
        "last_exit_code": 1,
    }
