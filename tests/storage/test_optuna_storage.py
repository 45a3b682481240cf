"""Optuna's storage on our URL: heartbeat retries, one retry in all, gRPC client URLs."""

from __future__ import annotations

import os
import time

import optuna
import pytest
from optuna.storages import GrpcStorageProxy, RDBStorage, fail_stale_trials
from optuna.trial import TrialState

from storage import queue
from storage.optuna_storage import make_optuna_storage


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)
def test_trial_failed_by_optuna_stale_check_is_retried_once_not_twice(db_url, engine):
    storage = make_optuna_storage(db_url, heartbeat_interval=1, grace_period=1)
    assert isinstance(storage, RDBStorage)
    record = queue.submit_study(engine, name="hb", spec={}, target_trials=2)
    study = optuna.create_study(study_name=record.optuna_name, storage=storage)
    worker = queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())
    queue.claim_trial_slot(engine, worker)
    trial = study.ask()
    trial.suggest_float("p", 0.1, 0.7)
    queue.heartbeat(engine, worker, record.id, trial._trial_id, trial.number)
    storage.record_heartbeat(trial._trial_id)
    time.sleep(2.1)  # Optuna compares heartbeats at the database clock's resolution

    fail_stale_trials(study)  # what Optuna does when another trial of the study starts
    assert queue.reap_stale_workers(engine, storage, grace_seconds=1) == [worker]

    assert study.trials[0].state == TrialState.FAIL
    retries = study.get_trials(states=(TrialState.WAITING,))
    assert len(retries) == 1  # Optuna's callback made it; the reaper saw FAIL and added none
    assert retries[0].system_attrs["failed_trial"] == trial.number
    assert retries[0].params == trial.params
    assert queue.get_study(engine, record.id).claimed == 0
    storage.engine.dispose()


def test_grpc_urls_give_a_proxy_client_and_bad_ones_fail_clearly():
    proxy = make_optuna_storage("grpc://127.0.0.1:13000")
    assert isinstance(proxy, GrpcStorageProxy)
    proxy.close()
    with pytest.raises(ValueError, match="host and a port"):
        make_optuna_storage("grpc://nohost")
