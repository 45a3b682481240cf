"""Issue 9 item 2: PostgreSQL stopped for ~10 s and started again, under a live API and workers.

The server is a private cluster of this module (`PrivatePostgres`), really stopped with
`pg_ctl stop` and started again (or every connection to the database killed, again and again,
for as long), so other tests on the shared server are not disturbed. While it
is down the API answers 503 with Retry-After on every database route (never 500, never a hang),
and it recovers by itself once the server is back. Workers ride out the outage: the study still
finishes with every trial counted once, none lost, none duplicated, nothing left RUNNING.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import httpx
import optuna
import psycopg
import pytest
from reliability_harness import (
    PrivatePostgres,
    Server,
    start_server,
    start_worker,
    stop_process,
    wait_for,
)

from storage.engine import make_engine
from storage.optuna_storage import make_optuna_storage
from storage.queue import get_study

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.process]

OUTAGE_S = 10.0
DB_ROUTES = [
    ("GET", "/studies"),
    ("GET", "/studies/{id}"),
    ("GET", "/studies/{id}/trials"),
    ("GET", "/studies/{id}/trials/0"),
    ("GET", "/studies/{id}/summary"),
    ("GET", "/workers"),
    ("GET", "/readyz"),
    ("POST", "/studies"),
    ("POST", "/studies/{id}/cancel"),
    ("DELETE", "/studies/{id}"),
    ("GET", "/api/studies"),
]


def tiny_spec(name: str, n_trials: int) -> dict:
    """Trials of about a second on one CPU thread (digits, one small layer), mostly training."""
    return {
        "name": name,
        "dataset": {"name": "digits", "train_subset": 300},
        "model": {"depth": 1, "width": [8, 32]},
        "dropout": {"variants": ["standard"], "placements": ["hidden"], "rate": [0.1, 0.5]},
        "training": {"epochs": 15, "batch_size": 64},
        "search": {"n_trials": n_trials, "sampler": "random", "pruner": "none"},
    }


@pytest.fixture
def api(private_postgres: PrivatePostgres, tmp_path) -> Iterator[Server]:
    server = start_server(private_postgres.create_database(), tmp_path)
    yield server
    server.stop()


def sweep(server: Server, study_id: int) -> list[tuple[str, str, int]]:
    """One request to every database route; (method, path, status) each."""
    results = []
    for method, template in DB_ROUTES:
        path = template.format(id=study_id)
        body = tiny_spec("during-outage", 2) if path == "/studies" else None
        try:
            status = server.client.request(method, path, json=body, timeout=15).status_code
        except httpx.TimeoutException:
            status = -1  # a hang is as bad as a 500
        results.append((method, path, status))
    return results


def test_api_answers_503_while_postgres_is_stopped_and_recovers(private_postgres, api, figure):
    study = api.client.post("/studies", json=tiny_spec("before-outage", 4)).json()
    assert api.client.get("/dashboard").status_code == 200  # the dashboard is built and warm
    private_postgres.stop()
    statuses: Counter[int] = Counter()
    bad: list[tuple[str, str, int]] = []
    down_since = time.monotonic()
    try:
        while time.monotonic() - down_since < OUTAGE_S:
            for method, path, status in sweep(api, study["id"]):
                statuses[status] += 1
                if status != 503:
                    bad.append((method, path, status))
            assert api.client.get("/healthz").status_code == 200
        response = api.client.get("/studies")
        assert response.headers.get("retry-after"), response.headers
        assert response.json()["detail"].startswith("the database is unavailable")
    finally:
        private_postgres.start()
    back = time.monotonic()
    wait_for(lambda: api.client.get("/readyz").status_code == 200, 30, what="/readyz 200")
    recovered_s = time.monotonic() - back
    after = sweep(api, study["id"])
    figure(
        outage_s=OUTAGE_S,
        requests_tried=sum(statuses.values()),
        statuses=dict(statuses),
        non_503_while_down=len(bad),
        server_errors=sum(n for s, n in statuses.items() if s >= 500 and s != 503),
        time_to_recover_s=round(recovered_s, 2),
    )
    assert not bad, bad[:10]
    # Back to normal on every route (the study was just deleted by the sweep's DELETE, or not).
    assert all(status < 500 for _, _, status in after), after
    assert api.client.post("/studies", json=tiny_spec("after-outage", 2)).status_code == 201
    assert "Traceback" not in api.log()


def kill_connections(pg: PrivatePostgres, database: str, seconds: float) -> int:
    """Terminate every connection to `database` every 0.3 s (idle ones dropped by a proxy or a
    server restart look the same to a client); returns how many were killed."""
    killed = 0
    deadline = time.monotonic() + seconds
    with psycopg.connect(pg.url(), autocommit=True) as admin:
        while time.monotonic() < deadline:
            killed += len(
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                ).fetchall()
            )
            time.sleep(0.3)
    return killed


@pytest.mark.parametrize("fault", ["restart", "connections_killed"])
def test_workers_ride_out_a_postgres_restart_without_losing_a_trial(
    private_postgres, tmp_path, figure, fault
):
    url = private_postgres.create_database()
    api = start_server(url, tmp_path)
    n_trials = 16
    workers = []
    try:
        study = api.client.post("/studies", json=tiny_spec("outage", n_trials)).json()
        # Grace longer than the outage: a worker must wait the database out, not give up.
        workers = [
            start_worker(url, tmp_path / f"worker-{i}.log", heartbeat=0.5, grace=25.0)
            for i in range(3)
        ]
        # Every worker registered (on a busy machine one may still be importing torch when the
        # first three trials finish: it would start into the outage, which is not this test's
        # question), and three trials finished, before the outage.
        wait_for(
            lambda: (
                len(api.client.get("/workers").json()) == 3
                and api.client.get(f"/studies/{study['id']}").json()["finished"] >= 3
            ),
            120,
            what="3 registered workers and 3 finished trials before the outage",
        )
        killed = 0
        if fault == "restart":
            private_postgres.stop()
            time.sleep(OUTAGE_S)
            private_postgres.start()
        else:
            killed = kill_connections(private_postgres, url.rpartition("/")[2], OUTAGE_S)
        back = time.monotonic()
        wait_for(lambda: api.client.get("/readyz").status_code == 200, 30, what="/readyz")
        done = wait_for(lambda: _done(api, study["id"]), 150, every=0.5, what="the study to finish")
        finished_s = time.monotonic() - back
        alive = [w.poll() is None for w in workers]
    finally:
        for w in workers:
            stop_process(w)
        api.stop()
    trials = optuna.load_study(
        study_name=study["optuna_name"], storage=url.replace("postgresql", "postgresql+psycopg")
    ).trials
    states = Counter(t.state.name for t in trials)
    counted = states["COMPLETE"] + states["PRUNED"]
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    failed = {t.number for t in trials if t.state.name == "FAIL"}
    # A trial the outage interrupted after it drew params gets one retry (a retry gets none; a
    # trial `ask` created but never handed back has no params and is only failed).
    interrupted = {
        t.number
        for t in trials
        if t.state.name == "FAIL" and t.params and "retry_of" not in t.user_attrs
    }
    record = get_study(make_engine(url), study["id"])
    figure(
        fault=fault,
        connections_killed=killed,
        outage_s=OUTAGE_S,
        trials_lost=max(0, n_trials - counted),
        duplicates=max(0, counted - n_trials),
        failed_trials=len(failed),
        interrupted_without_retry=len(interrupted - retried),
        workers_alive_after=sum(alive),
        time_to_finish_after_restart_s=round(finished_s, 1),
        states=dict(states),
    )
    assert done["state"] == "done", done
    assert counted == n_trials == record.finished, (states, record)
    stuck = [
        (t.number, t.datetime_start, t.params, t.user_attrs.get("worker_id"))
        for t in trials
        if t.state.name in ("RUNNING", "WAITING")
    ]
    logs = "\n".join(p.read_text(errors="replace")[-2500:] for p in tmp_path.glob("worker-*.log"))
    assert not stuck, f"{stuck}\n{logs}"
    assert interrupted <= retried, (interrupted, retried)
    dead = [
        (i, w.returncode, (tmp_path / f"worker-{i}.log").read_text(errors="replace")[-2000:])
        for i, w in enumerate(workers)
        if not alive[i]
    ]
    assert all(alive), f"a worker died in the outage instead of reconnecting: {dead}"


def _done(api: Server, study_id: int) -> dict | None:
    try:
        body = api.client.get(f"/studies/{study_id}").json()
    except httpx.HTTPError:
        return None
    return body if body["state"] in ("done", "failed", "cancelled") else None


def curve_spec(name: str, n_trials: int, epochs: int) -> dict:
    """Trials of many short epochs, so an outage falls in the middle of one's curve."""
    spec = tiny_spec(name, n_trials)
    spec["training"]["epochs"] = epochs
    spec["model"]["width"] = 16
    return spec


@pytest.mark.parametrize("outage_s", [0.0, 22.0], ids=["restart", "stop_22s"])
def test_a_complete_trial_keeps_every_epoch_through_an_outage(
    private_postgres, tmp_path, figure, outage_s
):
    """Issue 15 item 5: reports the database refused are kept and written once it is back."""
    url = private_postgres.create_database()
    api = start_server(url, tmp_path)
    epochs, n_trials = 60, 3
    log = tmp_path / "worker.log"
    worker = None
    try:
        study = api.client.post("/studies", json=curve_spec("curves", n_trials, epochs)).json()
        # Grace longer than the outage: the worker waits the database out.
        worker = start_worker(url, log, heartbeat=0.5, grace=40.0, extra=["--batch-trials", "1"])
        storage = make_optuna_storage(url)

        def mid_curve() -> bool:
            trials = optuna.load_study(study_name=study["optuna_name"], storage=storage).trials
            return any(
                t.state.name == "RUNNING" and len(t.intermediate_values) >= 3 for t in trials
            )

        # Minutes on a loaded machine: the worker imports torch before it registers.
        wait_for(mid_curve, 400, every=0.1, what="a trial part-way through its curve")
        private_postgres.stop()
        time.sleep(outage_s)
        private_postgres.start()
        done = wait_for(lambda: _done(api, study["id"]), 400, every=0.5, what="the study to end")
        alive = worker.poll() is None
    finally:
        if worker is not None:
            stop_process(worker)
        api.stop()
    trials = optuna.load_study(study_name=study["optuna_name"], storage=make_optuna_storage(url))
    complete = [t for t in trials.trials if t.state.name == "COMPLETE"]
    short = {t.number: (len(t.intermediate_values), len(t.user_attrs["curve"])) for t in complete}
    text = log.read_text(errors="replace")
    figure(
        outage_s=outage_s,
        states=dict(Counter(t.state.name for t in trials.trials)),
        values_per_complete_trial=sorted(n for n, _ in short.values()),
        held_back_lines=text.count("held-back epoch report"),
        heartbeat_outage_lines=text.count("heartbeat: the database is unreachable"),
    )
    assert done["state"] == "done", done
    assert len(complete) == n_trials
    assert all(n == c == epochs for n, c in short.values()), short
    assert alive, text[-3000:]
    assert "Traceback" not in text, text[-5000:]
    # One line per outage from each loop that noticed it, not one per retry.
    for what in ("heartbeat", "reaper", "finaliser", "epoch reports"):
        assert text.count(f"{what}: the database is unreachable") <= 1, what
