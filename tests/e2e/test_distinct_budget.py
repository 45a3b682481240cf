"""The trial budget buys distinct configurations: real worker processes on SQLite and PostgreSQL,
and the CLI's status over a real server, on a study whose space holds only three runs."""

from __future__ import annotations

import httpx
import pytest
from cli_harness import parsed, start_server, studyd
from optuna.trial import TrialState
from worker_harness import Cluster

from storage import queue

pytestmark = [pytest.mark.slow, pytest.mark.process]

# Three distinct runs: `none`; standard p = 0.3 and p = 0.5, where `pre_activation` under ReLU
# is the same network as `hidden` (studyd.analysis.canonical) and p = 0 is `none`.
THREE_RUNS = """
name: three-runs
dataset: digits
model: {depth: 1, width: 8}
dropout:
  variants: [none, standard]
  placements: [hidden, pre_activation]
  rate: {choices: [0.0, 0.3, 0.5]}
training: {epochs: 2, lr: 0.01}
search: {n_trials: 12, sampler: random, pruner: none, seed: 1}
"""


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


def test_status_says_the_search_ended_early_and_links_the_dashboard(tmp_path):
    server = start_server(tmp_path, workers=1)
    try:
        spec = tmp_path / "three.yaml"
        spec.write_text(THREE_RUNS)
        submitted = studyd(
            "submit",
            str(spec),
            "--watch",
            "--json",
            "--interval",
            "0.5",
            url=server.url,
            timeout=300,
        )
        study = parsed(submitted)
        assert study["state"] == "done" and study["finished"] == 3
        status = parsed(studyd("status", str(study["id"]), "--json", url=server.url))
        assert status["search_ended"].startswith("search space exhausted")
        assert status["dashboard_url"].startswith(server.url + "/dashboard/studies/")
        human = studyd("status", str(study["id"]), url=server.url).stdout
        assert "search ended" in human and status["dashboard_url"] in human
        summary = parsed(studyd("summary", str(study["id"]), "--json", url=server.url))
        assert summary["search_ended"] == status["search_ended"]
        page = httpx.get(status["dashboard_url"], timeout=30, follow_redirects=True)
        assert page.status_code in (200, 401)  # the page exists (behind the server's token)
    finally:
        server.stop()
