"""A warm, idle worker process starts a new study's first trial within 0.5 s of the submit, and the
study is `done` within 0.5 s of its last trial, on SQLite and PostgreSQL, whatever the poll."""

from __future__ import annotations

import statistics
import time

import optuna
import pytest
from optuna_dashboard import get_note
from worker_harness import Cluster, wait_for

from storage import queue

pytestmark = [pytest.mark.slow, pytest.mark.process]

TINY = """
name: latency-{n}
dataset: digits
model: {{depth: 1, width: 16}}
dropout: {{variants: [standard]}}
training: {{epochs: 2, batch_size: 128}}
search: {{sampler: random, n_trials: 2, seed: {n}}}
"""
# The promise; the median of a few rounds, since the 2-core CI machine is shared.
LATENCY_S = 0.5
ROUNDS = 5


@pytest.fixture
def cluster(db_url, tmp_path):
    running = Cluster(db_url, tmp_path)
    yield running
    running.close()


def _run_one(cluster: Cluster, n: int, timeout: float = 60) -> tuple[float, float]:
    """(submit → first trial start, last trial complete → `done` seen) in seconds."""
    submitted = time.time()
    record = cluster.submit(TINY.format(n=n))
    started = wait_for(
        lambda: [t.datetime_start for t in cluster.trials(record) if t.datetime_start],
        timeout,
        f"study {n}'s first trial",
    )
    wait_for(
        lambda: queue.get_study(cluster.engine, record.id).state == "done", timeout, f"{n} done"
    )
    done_seen = time.time()
    last = max(t.datetime_complete for t in cluster.trials(record))
    # The test score trains once more after `done`, then the worker writes the dashboard note
    # (the evidence, fANOVA included) and graphs: the next round needs the worker idle again.
    # (Waiting for the score alone, the next study's start waited on the note: 0.5-1.8 s in CI
    # beside the other test process's 8 workers, against 0.06-0.11 s idle.)
    wait_for(
        lambda: queue.get_study(cluster.engine, record.id).test_score is not None, timeout, "score"
    )
    study = optuna.load_study(study_name=record.optuna_name, storage=cluster.storage)
    wait_for(lambda: "**Test score**" in get_note(study), timeout, "the note with the score")
    time.sleep(0.3)  # its graphs come after the note
    # Optuna's datetimes are naive local time: `.timestamp()` reads them as such.
    return min(started).timestamp() - submitted, done_seen - last.timestamp()


def test_idle_worker_starts_a_new_study_and_ends_it_within_half_a_second(cluster):
    # A poll far above the promise: only the wake-up can meet it.
    worker = cluster.start_worker("--poll", "5")
    _run_one(cluster, 0, timeout=300)  # warm-up: imports, the dataset in memory
    rounds = [_run_one(cluster, n) for n in range(1, ROUNDS + 1)]
    starts, ends = zip(*rounds, strict=True)
    assert worker.poll() is None, cluster.log(0)
    assert statistics.median(starts) <= LATENCY_S, (starts, cluster.log(0))
    assert statistics.median(ends) <= LATENCY_S, (ends, cluster.log(0))
