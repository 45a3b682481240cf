"""The reaper: a SIGKILLed worker's trial is failed, its slot returned, its params retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from storage import queue

PROCS = Path(__file__).with_name("procs.py")
HEARTBEAT_S = 0.2
GRACE_S = 1.0


@pytest.mark.slow
@pytest.mark.process
def test_killed_worker_trial_fails_and_slot_returns_within_heartbeat_plus_grace(
    db_url, engine, optuna_storage
):
    record = queue.submit_study(engine, name="reap", spec={}, target_trials=1)
    optuna.create_study(study_name=record.optuna_name, storage=optuna_storage)
    child = subprocess.Popen(
        [sys.executable, str(PROCS), "worker", db_url, str(record.id), str(HEARTBEAT_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        hello = json.loads(child.stdout.readline())
        time.sleep(3 * HEARTBEAT_S)
        assert queue.reap_stale_workers(engine, optuna_storage, GRACE_S) == []  # alive: untouched
        assert optuna_storage.get_trial(hello["trial_id"]).state == TrialState.RUNNING
        os.kill(child.pid, signal.SIGKILL)
        killed = time.monotonic()
    finally:
        child.kill()
        child.wait()

    # No other worker touches the study: only our reaper, polled the way a server would.
    while optuna_storage.get_trial(hello["trial_id"]).state == TrialState.RUNNING:
        assert time.monotonic() - killed < HEARTBEAT_S + GRACE_S + 2.0, "trial still RUNNING"
        queue.reap_stale_workers(engine, optuna_storage, GRACE_S)
        time.sleep(0.05)
    latency = time.monotonic() - killed
    print(f"reaped {latency:.2f} s after SIGKILL (heartbeat {HEARTBEAT_S}, grace {GRACE_S})")

    assert latency <= HEARTBEAT_S + GRACE_S + 0.5
    assert optuna_storage.get_trial(hello["trial_id"]).state == TrialState.FAIL
    assert queue.get_study(engine, record.id).claimed == 0
    assert queue.list_workers(engine) == []
    with pytest.raises(queue.WorkerGone):
        queue.heartbeat(engine, hello["worker"])

    # The slot is claimable again and the next ask runs the dead trial's params, once.
    dead = optuna_storage.get_trial(hello["trial_id"])
    survivor = queue.register_worker(engine, host="test", device="cpu", pid=os.getpid())
    assert queue.claim_trial_slot(engine, survivor).id == record.id
    retry = optuna.load_study(study_name=record.optuna_name, storage=optuna_storage).ask()
    assert retry.suggest_float("p", 0.1, 0.7) == dead.params["p"]
    assert retry.user_attrs["retry_of"] == dead.number
