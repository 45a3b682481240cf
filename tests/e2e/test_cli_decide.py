"""`studyd workers`, `compare` and `extend` as a user runs them: `studyd ...` subprocesses against
a real `studyd serve` on SQLite without workers (the rows a worker writes are written here the
worker's way, through `storage.queue` and Optuna)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cli_harness import Server, one_line_error, parsed, start_server, stop_server, studyd

from storage import queue
from storage.engine import make_engine


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("cli-decide"), workers=0)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def engine(server):
    engine = make_engine(server.database_url)
    yield engine
    engine.dispose()


def test_workers_lists_a_live_worker_with_its_study_and_trial(server, engine):
    assert parsed(studyd("workers", "--json", url=server.url)) == []
    study = queue.submit_study(engine, name="held", spec={}, target_trials=3)
    worker = queue.register_worker(engine, host="gpu-box-7", device="cuda:1", pid=os.getpid())
    queue.heartbeat(engine, worker, study_id=study.id, trial_id=None, trial_number=4)
    rows = parsed(studyd("workers", "--json", url=server.url))
    assert [(w["id"], w["host"], w["device"]) for w in rows] == [(worker, "gpu-box-7", "cuda:1")]
    assert (rows[0]["study_id"], rows[0]["trial_number"], rows[0]["state"]) == (
        study.id,
        4,
        "alive",
    )
    table = studyd("workers", url=server.url)
    assert table.returncode == 0, table.stderr
    line = next(line for line in table.stdout.splitlines() if "gpu-box-7" in line)
    assert "cuda:1" in line and "#4" in line and "alive" in line and " ago" in line
    bad = studyd("workers", "--alive-within", "0", url=server.url)
    assert "--alive-within" in one_line_error(bad)
    queue.unregister_worker(engine, worker)
    assert parsed(studyd("workers", "--json", url=server.url)) == []
