"""A stack's extra slots are leases of its worker's row (issue 25 item 4): `GET /workers` shows one
entry per process with every trial it holds, not K "workers" with one pid."""

from __future__ import annotations

import os
from types import SimpleNamespace

from fastapi.testclient import TestClient
from worker_fakes import StubTrainer, options, submitted

from api.app import create_app
from storage import queue
from storage.sql_store import SqlWorkerStore
from studyd.daemon.embedded import EmbeddedWorker, EmbeddedWorkers
from studyd.daemon.worker import Worker
from studyd.settings import Settings

ONE_VARIANT = (
    "name: s\ndropout: {variants: [standard]}\nmodel: {width: 8}\n"
    "training: {epochs: 3}\nsearch: {n_trials: 6, pruner: none}"
)


def test_a_stack_of_three_is_one_worker_holding_three_trials(backend, db_url, tmp_path):
    engine, optuna_storage = backend
    store = SqlWorkerStore(engine, optuna_storage)
    submitted(store, ONE_VARIANT)
    seen: list[list[queue.WorkerRecord]] = []

    def look(epoch: int, trials: int) -> None:
        if epoch == 1:
            seen.append(queue.list_workers(engine))

    trainer = StubTrainer(hook=look)
    assert Worker.on(store, options(tmp_path, batch_trials=3), trainer=trainer).run() == 6
    assert len(seen) == 2  # two stacks of three
    for listed in seen:
        assert len(listed) == 1  # one process, one entry
        (one,) = listed
        assert one.pid == os.getpid()
        assert len(one.trials) == 3 and one.trial_number in one.trials
    assert sorted(n for listed in seen for n in listed[0].trials) == list(range(6))
    assert queue.list_workers(engine) == []  # the worker and its leases unregistered


def test_the_workers_route_folds_lease_rows_into_their_worker(backend, db_url, tmp_path):
    engine, _ = backend
    own = queue.register_worker(engine, host="h", device="cpu", pid=7)
    leases = [queue.register_worker(engine, host="h", device="cpu", pid=7, lease_of=own)]
    leases.append(queue.register_worker(engine, host="h", device="cpu", pid=7, lease_of=own))
    record = queue.submit_study(engine, name="s", spec={}, target_trials=3)
    for number, row in enumerate([own, *leases]):
        assert queue.claim_trial_slot(engine, row).id == record.id
        queue.heartbeat(engine, row, record.id, trial_id=100 + number, trial_number=number)
    settings = Settings(database_url=db_url, data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        workers = client.get("/workers").json()
    assert [(w["id"], w["pid"], w["trials"], w["restarts"]) for w in workers] == [
        (own, 7, [0, 1, 2], 0)
    ]
    # The reaper still takes lease rows one by one (each holds its own slot).
    assert sorted(queue.reap_stale_workers(engine, backend[1], grace_seconds=-1)) == sorted(
        [own, *leases]
    )


def test_a_restarted_embedded_worker_shows_its_restarts_while_alive(backend, db_url, tmp_path):
    # `studyd serve` restarted slot 0 twice; its process now (pid 4242) heartbeats a row.
    engine, _ = backend
    queue.register_worker(engine, host="h", device="cpu", pid=4242)
    settings = Settings(database_url=db_url, data_dir=tmp_path)
    supervisor = EmbeddedWorkers(count=1, settings=settings)
    supervisor.workers = [EmbeddedWorker(0, process=SimpleNamespace(pid=4242), restarts=2)]
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.embedded_workers = supervisor
        (worker,) = client.get("/workers").json()
    assert (worker["pid"], worker["state"], worker["restarts"]) == (4242, "alive", 2)
