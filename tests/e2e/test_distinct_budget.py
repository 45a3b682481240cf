"""The trial budget buys distinct configurations: real worker processes on SQLite and PostgreSQL,
on a study whose space holds only three runs (the CLI's status of such a study:
tests/e2e/test_cli_study.py)."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState
from spec_harness import THREE_RUNS
from worker_harness import Cluster

from storage import queue

pytestmark = [pytest.mark.slow, pytest.mark.process]


@pytest.fixture
def cluster(db_url, tmp_path):
    running = Cluster(db_url, tmp_path)
    yield running
    running.close()


def test_workers_train_each_distinct_run_once_and_end_when_the_space_is_exhausted(cluster):
    record = cluster.submit(THREE_RUNS)
    workers = [cluster.start_worker("--once", "--batch-trials", k) for k in ("4", "1")]
    for n, process in enumerate(workers):
        assert cluster.wait_exit(process, 240) == 0, cluster.log(n)
    done = queue.get_study(cluster.engine, record.id)
    assert done.state == "done", done.error
    # Counted trials (the slots) are distinct runs: one each, never a repeat, never past target.
    assert done.finished == done.claimed == done.target_trials == 3
    trials = cluster.trials(record)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counted = [t for t in complete if "duplicate_of" not in t.user_attrs]
    assert len(counted) == 3 and len({t.user_attrs["run_key"] for t in counted}) == 3
    assert {t.user_attrs["placement"] for t in counted} <= {"none", "hidden"}
    # Repeats were told the known result (so the sampler learns) without counting.
    repeats = [t for t in complete if "duplicate_of" in t.user_attrs]
    by_number = {t.number: t for t in complete}
    assert repeats
    for t in repeats:
        # Equal to rounding: a repeat whose worker stopped (the study ended) while its lower
        # twin still trained keeps its own result of the same run, trained stacked (float32
        # sums) where the other worker's `--batch-trials 1` trained it unstacked.
        assert t.value == pytest.approx(by_number[t.user_attrs["duplicate_of"]].value, abs=1e-6)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    study_attrs = cluster.storage.get_study_user_attrs(
        cluster.storage.get_study_id_from_name(record.optuna_name)
    )
    assert study_attrs["search_ended"].startswith("search space exhausted: all 3 distinct")
