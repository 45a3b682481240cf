"""Issue 15 items 1, 2 and 4: deleting, cancelling and resubmitting studies under live workers.

Real `studyd serve --workers 2` processes (embedded workers, heartbeat 0.5 s) on SQLite and on
PostgreSQL, driven through the REST API and the CLI as a user would:
- a study submitted after a deleted one (on SQLite it may take the deleted one's id) trains its
  own spec, never the deleted one's (the workers keep studies by identity, not by id);
- cancel followed at once by delete, with trials running, costs no worker: each drops its trial
  in one line and serves the next study;
- cancel stops a running trial within 5 s even in the middle of a large network's first epoch;
  the trial is FAIL with `error` "cancelled: …", shown as fail (cancelled) by `studyd trials`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import optuna
import pytest
from reliability_harness import (
    REPO,
    Server,
    clean_env,
    embedded_pids,
    serve_with_workers,
    trainable_spec,
    wait_for,
)

from storage.engine import make_engine
from storage.optuna_storage import make_optuna_storage
from storage.queue import list_workers

pytestmark = [pytest.mark.slow, pytest.mark.process]


@pytest.fixture(scope="module")
def server(module_db_url, tmp_path_factory) -> Iterator[Server]:
    """One serve with its 2 workers per backend for the module: each test ends or deletes its
    studies, so the next finds both workers idle (a serve per test cost 3 process starts)."""
    srv = serve_with_workers(module_db_url, tmp_path_factory.mktemp("serve"))
    yield srv
    srv.stop()


@pytest.fixture
def db_url(server: Server) -> str:
    return server.database_url


def ended(server: Server, study_id: int, timeout: float = 180) -> dict:
    def state() -> dict | None:
        body = server.client.get(f"/studies/{study_id}").json()
        return body if body["state"] in ("done", "failed", "cancelled") else None

    return wait_for(state, timeout, every=0.3, what=f"study {study_id} to end")


def trials_of(url: str, optuna_name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=optuna_name, storage=make_optuna_storage(url)).trials


def test_a_study_submitted_after_a_deleted_one_trains_its_own_spec(server, db_url, figure):
    old = trainable_spec("old", 8, variants=["standout"], width=8)
    first = server.client.post("/studies", json=old).json()
    assert ended(server, first["id"])["state"] == "done"
    old_trials = trials_of(db_url, first["optuna_name"])
    served_by = {t.user_attrs.get("worker_id") for t in old_trials}
    assert server.client.delete(f"/studies/{first['id']}").status_code in (200, 204)

    new = trainable_spec("new", 8, variants=["standard", "gaussian"], width=12)
    second = server.client.post("/studies", json=new).json()
    body = ended(server, second["id"])
    trials = trials_of(db_url, second["optuna_name"])
    figure(
        backend=db_url.split(":")[0],
        id_reused=second["id"] == first["id"],
        old_served_by_workers=len(served_by),
        states=sorted(t.state.name for t in trials),
    )
    assert body["state"] == "done", body
    assert body["error"] is None
    # A repeated proposal is told its known result (`duplicate_of`) without counting.
    assert len([t for t in trials if "duplicate_of" not in t.user_attrs]) == 8
    for trial in trials:
        assert trial.state.name == "COMPLETE", (trial.number, trial.state, trial.user_attrs)
        assert trial.params.get("variant") in ("standard", "gaussian"), trial.params
        assert not any(name.startswith("standout") for name in trial.params), trial.params
        assert trial.user_attrs["config"]["hidden"] == [12], trial.user_attrs["config"]
    assert len(embedded_pids(server)) == 2
    assert "Traceback" not in server.log()


def test_cancel_then_delete_mid_trial_costs_no_worker(server, db_url):
    long = trainable_spec("long", 6, variants=["standard"], width=16, epochs=400)
    study = server.client.post("/studies", json=long).json()

    def training() -> bool:
        rows = [w for w in server.client.get("/workers").json() if w["state"] == "alive"]
        return len(rows) == 2 and any(w["trial_id"] is not None for w in rows)

    wait_for(training, 300, every=0.2, what="both workers up, a trial training")
    pids = embedded_pids(server)
    assert server.client.post(f"/studies/{study['id']}/cancel").status_code == 200
    assert server.client.delete(f"/studies/{study['id']}").status_code in (200, 204)

    # Both workers drop their trial and stay: same processes, heartbeating, no lease left on
    # the deleted study's id.
    engine = make_engine(db_url)
    wait_for(
        lambda: all(w.study_id is None for w in list_workers(engine)),
        30,
        what="the workers to let go of the deleted study",
    )
    time.sleep(2.0)  # a worker that crashed on it would be gone by now
    assert embedded_pids(server) == pids
    log = server.log()
    assert "Traceback" not in log, log
    # One line per dropped trial: deleted under its trial, stopped by the cancel and its slot
    # gone with the study, or (when the cancel's stop was recorded before the delete landed)
    # the heartbeat's stop alone.
    lines = (
        "cancelled or deleted under its trial",
        "was deleted: its slot went",
        f"study {study['id']} was cancelled: stopping its trials now",
    )
    since_submit = log[log.rfind(f"submitted study {study['id']} ({study['optuna_name']})") :]
    assert any(line in since_submit for line in lines), log
    short = server.client.post(
        "/studies", json=trainable_spec("next", 4, variants=["standard"], width=8)
    )
    assert ended(server, short.json()["id"])["state"] == "done"
    assert embedded_pids(server) == pids


def test_cancel_stops_a_large_networks_trial_within_5_s(server, db_url, figure):
    big = trainable_spec("big", 2, variants=["standard"], width=1024, epochs=50)
    big["model"]["depth"] = 3
    big["dataset"] = {"name": "digits"}
    big["training"]["batch_size"] = 8
    study = server.client.post("/studies", json=big).json()

    def training() -> dict | None:
        page = server.client.get(f"/studies/{study['id']}/trials").json()["items"]
        return next((t for t in page if t["state"] == "running"), None)

    running = wait_for(training, 120, every=0.2, what="a trial training")
    time.sleep(1.0)  # well into its first epoch (minutes long here)
    cancelled_at = time.monotonic()
    assert server.client.post(f"/studies/{study['id']}/cancel").status_code == 200

    def stopped() -> dict | None:
        trial = server.client.get(f"/studies/{study['id']}/trials/{running['number']}").json()
        return trial if trial["state"] != "running" else None

    trial = wait_for(stopped, 60, every=0.1, what="the trial to stop")
    took = time.monotonic() - cancelled_at
    figure(backend=db_url.split(":")[0], cancel_took_s=round(took, 2))
    assert took < 5.0, f"the trial stopped {took:.1f} s after the cancel"
    assert trial["state"] == "fail"
    assert trial["user_attrs"]["error"].startswith("cancelled: ")
    # The CLI shows why, and its help says what happened.
    env = clean_env()
    cli = [sys.executable, "-m", "studyd.cli.main"]
    table = subprocess.run(
        [*cli, "trials", str(study["id"]), "--url", server.url, "--sort", "number"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "fail (cancelled)" in table, table
    helptext = subprocess.run(
        [*cli, "cancel", "--help"], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    ).stdout
    words = " ".join(helptext.split())
    assert "running trials stop within seconds" in words and "fail (cancelled)" in words, words
