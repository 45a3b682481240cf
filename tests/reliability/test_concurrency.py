"""Issue 9 item 3: 8 workers × 20 trials on one study, on SQLite and on PostgreSQL.

Eight `studyd worker --max-trials 20` processes serve one 160-trial study while a client polls the
API (study, trial pages, workers) and a standalone optuna-dashboard (`studyd dashboard`) reads the
same database — the reads that make plain SQLite say "database is locked". The study must end
with exactly 160 complete trials, 20 per worker, numbers 0..159 once each, every trial's stored
config rebuilt from its params, its curve as long as its epochs and its value the last val_acc.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import optuna
import pytest
from reliability_harness import (
    REPO,
    clean_env,
    free_port,
    start_server,
    start_worker,
    stop_process,
    wait_for,
)

from storage.optuna_storage import make_optuna_storage
from studyd.daemon.search import suggest_config
from studyd.spec import validate_spec

pytestmark = [pytest.mark.slow, pytest.mark.process]

WORKERS, PER_WORKER = 8, 20
DIGITS_SHAPE = (64, 10)
SPEC = {
    "name": "concurrency",
    "dataset": {"name": "digits", "train_subset": 150},
    "model": {"depth": [1, 2], "width": [4, 16]},
    "dropout": {"variants": ["none", "standard", "gaussian"], "placements": ["hidden"]},
    "training": {"epochs": [1, 2], "batch_size": 64},
    "search": {"n_trials": WORKERS * PER_WORKER, "sampler": "random", "pruner": "none"},
}


@dataclass
class Poller:
    """Reads the API and the dashboard in a loop until stopped; counts what it got."""

    api: httpx.Client
    dashboard: httpx.Client
    study_id: int
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    finished_seen: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        sid = self.study_id
        while not self.stop.is_set():
            for client, path in (
                (self.api, f"/studies/{sid}"),
                (self.api, f"/studies/{sid}/trials?limit=50&sort=value"),
                (self.api, f"/studies/{sid}/trials?state=running"),
                (self.api, "/workers"),
                (self.dashboard, "/api/studies"),
                (self.dashboard, "/api/studies/1?after=0"),
            ):
                try:
                    response = client.get(path)
                except httpx.HTTPError as exc:
                    self.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                    continue
                self.statuses[response.status_code] += 1
                if response.status_code >= 400:
                    self.errors.append(f"{path}: {response.status_code} {response.text[:200]}")
                elif path == f"/studies/{sid}":
                    self.finished_seen.append(response.json()["finished"])
            self.stop.wait(0.5)


def start_dashboard(database_url: str, log_path) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    port = free_port()
    args = [sys.executable, "-m", "studyd.cli.main", "dashboard", "--database-url", database_url]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*args, "--port", str(port)], cwd=REPO, env=clean_env(), stdout=log, stderr=log
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def up() -> bool:
        try:
            return client.get("/api/studies").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, what="optuna-dashboard to answer")
    return process, client


def test_8_workers_x_20_trials_give_exactly_160_consistent_trials(db_url, tmp_path, figure):
    backend = db_url.split(":", 1)[0]
    api = start_server(db_url, tmp_path)
    workers = []
    dashboard = None
    poller = None
    try:
        study = api.client.post("/studies", json=SPEC).json()
        dashboard, dash_client = start_dashboard(db_url, tmp_path / "dashboard.log")
        poller = Poller(api.client, dash_client, study["id"])
        reader = threading.Thread(target=poller.run, daemon=True)
        reader.start()
        started = time.monotonic()
        workers = [
            start_worker(
                db_url,
                tmp_path / f"worker-{i}.log",
                heartbeat=2.0,
                grace=60.0,
                reaper_period=5.0,
                extra=["--max-trials", str(PER_WORKER)],
            )
            for i in range(WORKERS)
        ]
        wait_for(
            lambda: api.client.get(f"/studies/{study['id']}").json()["state"] == "done",
            300,
            every=0.5,
            what="the study to be done",
        )
        seconds = time.monotonic() - started
        exit_codes = [w.wait(120) for w in workers]
        poller.stop.set()
        reader.join(10)
        final = api.client.get(f"/studies/{study['id']}").json()
    finally:
        if poller is not None:
            poller.stop.set()
        for w in workers:
            stop_process(w)
        if dashboard is not None:
            stop_process(dashboard)
        api.stop()

    storage = make_optuna_storage(db_url)
    trials = optuna.load_study(study_name=study["optuna_name"], storage=storage).trials
    states = Counter(t.state.name for t in trials)
    spec = validate_spec(SPEC)
    inconsistent = []
    for t in trials:
        model_cfg, train_cfg = suggest_config(t, spec, DIGITS_SHAPE)
        curve = t.user_attrs.get("curve", [])
        reported = {c["epoch"]: c["val_acc"] for c in curve}
        if (
            t.user_attrs.get("config") != model_cfg.model_dump(mode="json")
            or t.user_attrs.get("train") != train_cfg.model_dump(mode="json")
            or len(curve) != train_cfg.epochs
            or t.value != curve[-1]["val_acc"]
            or t.intermediate_values != reported
        ):
            inconsistent.append(t.number)
    per_worker = Counter(t.user_attrs.get("worker_id") for t in trials)
    numbers = sorted(t.number for t in trials)
    target = WORKERS * PER_WORKER
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    busy = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials if ends]
    figure(
        backend=backend,
        trials_span_s=round((max(ends) - min(starts)).total_seconds(), 1) if ends else None,
        mean_trial_s=round(sum(busy) / len(busy), 2) if busy else None,
        complete=states["COMPLETE"],
        trials_lost=target - states["COMPLETE"],
        duplicates=len(numbers) - len(set(numbers)) + max(0, len(trials) - target),
        inconsistent=len(inconsistent),
        seconds=round(seconds, 1),
        requests_tried=sum(poller.statuses.values()),
        read_errors=len(poller.errors),
        server_errors=sum(n for s, n in poller.statuses.items() if s >= 500),
        per_worker=sorted(per_worker.values()),
    )
    assert final["finished"] == target and final["claimed"] == target, final
    assert states == Counter({"COMPLETE": target}), states
    assert numbers == list(range(target))
    assert not inconsistent, inconsistent[:10]
    assert sorted(per_worker.values()) == [PER_WORKER] * WORKERS, per_worker
    assert exit_codes == [0] * WORKERS, exit_codes
    assert not poller.errors, poller.errors[:10]
    assert poller.finished_seen == sorted(poller.finished_seen), "finished went backwards"
    assert sum(poller.statuses.values()) > 0
