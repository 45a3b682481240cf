"""Child processes for the storage tests: a slot claimer, a starting server, a worker.

Run as `python procs.py claim|ensure URL START_FILE`, or
`python procs.py worker URL STUDY_ID HEARTBEAT`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import optuna

from storage import queue
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage


def claim(url: str, start_file: str) -> None:
    """Claim and finish slots until none is left; print one JSON line per claim."""
    engine = make_engine(url)
    worker_id = queue.register_worker(engine, host="test", device="cpu", pid=os.getpid())
    queue.list_studies(engine, limit=1)  # connect before the start, not after
    Path(f"{start_file}.ready.{os.getpid()}").touch()
    while not Path(start_file).exists():
        time.sleep(0.005)
    while (record := queue.claim_trial_slot(engine, worker_id)) is not None:
        print(json.dumps({"study": record.id, "slot": record.claimed}), flush=True)
        queue.finish_trial_slot(engine, record.id, worker_id=worker_id)
    queue.unregister_worker(engine, worker_id)


def worker(url: str, study_id: int, interval: float) -> None:
    """Claim a slot, start an Optuna trial, then heartbeat until killed."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine = make_engine(url)
    worker_id = queue.register_worker(engine, host="test", device="cpu", pid=os.getpid())
    record = queue.claim_trial_slot(engine, worker_id)
    assert record is not None and record.id == study_id
    study = optuna.load_study(study_name=record.optuna_name, storage=make_optuna_storage(url))
    trial = study.ask()
    trial.suggest_float("p", 0.1, 0.7)
    queue.heartbeat(engine, worker_id, record.id, trial._trial_id, trial.number)
    print(json.dumps({"worker": worker_id, "trial_id": trial._trial_id}), flush=True)
    while True:
        time.sleep(interval)
        queue.heartbeat(engine, worker_id)


def ensure(url: str, start_file: str) -> None:
    """Start like a server: migrate on start, all processes at the same instant."""
    Path(f"{start_file}.ready.{os.getpid()}").touch()
    while not Path(start_file).exists():
        time.sleep(0.005)
    ensure_schema(url)


if __name__ == "__main__":
    if sys.argv[1] == "ensure":
        ensure(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "claim":
        claim(sys.argv[2], sys.argv[3])
    else:
        worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
