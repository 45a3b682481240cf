"""Worker faults as real processes: SIGKILL mid-trial, SIGTERM within one epoch, unusable data."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
from optuna.trial import TrialState
from worker_harness import Cluster, wait_for, worker_of

from storage import queue

pytestmark = [pytest.mark.slow, pytest.mark.process]

LONG_TRIALS = """
name: e2e-long
dataset: digits
model: {depth: 2, width: %d}
dropout: {variants: [standard], rate: [0.1, 0.5]}
training: {epochs: %d, batch_size: 16, lr: [1.0e-3, 1.0e-2]}
search: {sampler: random, pruner: none, n_trials: %d, seed: 0}
"""


@pytest.fixture
def cluster(db_url, tmp_path):
    running = Cluster(db_url, tmp_path)
    yield running
    running.close()


@pytest.fixture
def sqlite_cluster(sqlite_url, tmp_path):
    """For behaviour of the worker process alone (signals, data), where the backend is moot."""
    running = Cluster(sqlite_url, tmp_path)
    yield running
    running.close()


# The spec fixes the architecture, so `--batch-trials auto` would stack its trials.
ONE_AT_A_TIME = ("--batch-trials", "1")


def _mid_trial(cluster: Cluster, pid: int, min_epochs: int = 1):
    """The trial worker `pid` is training once it has reported `min_epochs` epochs, else None."""
    worker = worker_of(cluster, pid)
    if worker is None or worker.trial_id is None:
        return None
    trial = cluster.storage.get_trial(worker.trial_id)
    return trial if len(trial.intermediate_values) >= min_epochs else None


def test_sigkill_mid_trial_fails_that_trial_and_the_study_still_reaches_its_target(cluster):
    record = cluster.submit(LONG_TRIALS % (128, 12, 6))
    # One trial per slot: this is the one-trial protocol (stacks: tests/studyd/test_worker_batch).
    victim = cluster.start_worker("--grace", "8", *ONE_AT_A_TIME)
    survivor = cluster.start_worker("--grace", "8", "--once", *ONE_AT_A_TIME)
    killed = wait_for(lambda: _mid_trial(cluster, victim.pid), 180, "the victim to be mid-trial")
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    assert cluster.wait_exit(survivor, 300) == 0, cluster.log(1)
    done = queue.get_study(cluster.engine, record.id)
    assert done.state == "done" and done.finished == done.claimed == 6
    trials = cluster.trials(record)
    states = Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] == 6
    assert states[TrialState.RUNNING] == 0 and states[TrialState.WAITING] == 0
    assert trials[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert worker_of(cluster, victim.pid) is None


def test_sigkill_mid_stack_fails_every_trial_of_the_stack_and_retries_each_once(sqlite_cluster):
    cluster = sqlite_cluster
    record = cluster.submit(LONG_TRIALS % (128, 12, 5))
    victim = cluster.start_worker("--grace", "8", "--batch-trials", "3")

    def mid_stack():
        # One entry for the process, holding its stack's three trials (its row and two leases).
        rows = [w for w in queue.list_workers(cluster.engine) if w.pid == victim.pid]
        if len(rows) != 1 or len(rows[0].trials) != 3:
            return None
        by_number = {t.number: t for t in cluster.trials(record)}
        trials = [by_number[n] for n in rows[0].trials]
        return trials if all(t.intermediate_values for t in trials) else None

    stack = wait_for(mid_stack, 180, "the victim's stack of 3 to be mid-training")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = cluster.start_worker("--grace", "8", "--once", *ONE_AT_A_TIME)

    assert cluster.wait_exit(survivor, 300) == 0, cluster.log(1)
    done = queue.get_study(cluster.engine, record.id)
    assert done.state == "done" and done.finished == done.claimed == 5
    trials = cluster.trials(record)
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: 5, TrialState.FAIL: 3}
    for killed in stack:
        assert trials[killed.number].state == TrialState.FAIL
        retries = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
        assert len(retries) == 1 and retries[0].params == killed.params
        assert retries[0].state == TrialState.COMPLETE
    assert queue.list_workers(cluster.engine) == []


SHORT_THEN_LONG = """
name: e2e-sigterm
dataset: digits
model: {depth: 2, width: 512}
dropout: {variants: [standard], rate: 0.3}
training: {epochs: {choices: [2, 80]}, batch_size: 16, lr: 0.003}
search: {sampler: random, pruner: none, n_trials: 3}
baselines: [{epochs: 2}, {epochs: 80}]
"""


def test_sigterm_stops_within_one_epoch_and_fails_the_trial_cleanly(sqlite_cluster):
    cluster = sqlite_cluster
    record = cluster.submit(SHORT_THEN_LONG)
    worker = cluster.start_worker(*ONE_AT_A_TIME)
    # A 2-epoch trial first, to know how long an epoch takes on this machine right now; then an
    # 80-epoch one, far longer than one epoch plus the process's teardown.
    wait_for(lambda: queue.get_study(cluster.engine, record.id).finished >= 1, 240, "a trial")
    epoch = cluster.trials(record)[0].user_attrs["epoch_seconds"]
    current = wait_for(lambda: _mid_trial(cluster, worker.pid), 120, "the 80-epoch trial")
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    reported = len(cluster.storage.get_trial(current._trial_id).intermediate_values)
    assert cluster.wait_exit(worker, 60) == 0, cluster.log(0)
    elapsed = time.monotonic() - sent

    stopped = cluster.storage.get_trial(current._trial_id)
    assert stopped.state == TrialState.FAIL
    # At most the epoch in progress finished after the signal (its report may land just after
    # we read the count, hence 2), and the process was gone soon after: one epoch, then the
    # interpreter's teardown of torch and Lightning (4-5 s measured on a loaded 2-core machine).
    assert len(stopped.intermediate_values) - reported <= 2
    assert len(stopped.intermediate_values) < 80
    assert elapsed < 2 * epoch + 15, (elapsed, epoch)
    assert "SIGTERM" in stopped.user_attrs["error"]
    after = queue.get_study(cluster.engine, record.id)
    assert after.state == "running" and after.claimed == after.finished == 1
    assert queue.list_workers(cluster.engine) == []


def test_study_whose_data_cannot_load_fails_readably_while_the_worker_serves_another(
    sqlite_cluster,
):
    cluster = sqlite_cluster
    bad = cluster.submit(
        "name: e2e-bad-data\ndataset: npz:missing.npz\nsearch: {n_trials: 3}", priority=5
    )
    good = cluster.submit(
        "name: e2e-good\nmodel: {width: 8}\ntraining: {epochs: 2}\n"
        "search: {n_trials: 3, pruner: none}"
    )
    worker = cluster.start_worker("--once")
    assert cluster.wait_exit(worker, 240) == 0, cluster.log(0)

    failed = queue.get_study(cluster.engine, bad.id)
    assert failed.state == "failed"
    assert "dataset 'npz:missing.npz' could not be loaded" in failed.error
    assert "\n" not in failed.error
    assert failed.claimed == failed.finished == 0
    served = queue.get_study(cluster.engine, good.id)
    assert served.state == "done" and served.finished == 3
    assert Counter(t.state for t in cluster.trials(served)) == {TrialState.COMPLETE: 3}
