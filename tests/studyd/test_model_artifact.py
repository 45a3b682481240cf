"""The retrained best model kept in Optuna's artifact store, downloaded through the API, loaded
with `models.saved` and scored again: the recorded test score comes back exactly."""

from __future__ import annotations

import io

import optuna
from fastapi.testclient import TestClient
from optuna.artifacts import get_all_artifact_meta

from api.app import create_app
from models.data import load_dataset
from models.saved import load_saved
from models.training import evaluate, train_model
from storage import queue
from studyd.daemon.model_artifact import MODEL_ATTR, artifact_store, store_model
from studyd.daemon.runs import trial_config
from studyd.daemon.service import submit_spec
from studyd.settings import Settings
from studyd.spec import load_spec

SPEC = """
name: keep
dataset: digits
model: {depth: 1, width: [16, 64]}
dropout: {variants: [standard], placements: [hidden], rate: [0.1, 0.5]}
training: {epochs: 2}
search: {n_trials: 1}
"""


def test_the_downloaded_model_reproduces_the_recorded_test_score(sqlite_backend, tmp_path):
    engine, storage = sqlite_backend
    spec = load_spec(SPEC)
    record = submit_spec(engine, storage, spec)
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    data = load_dataset("digits", data_dir=tmp_path, seed=spec.dataset.seed)
    trial = study.ask()
    model_cfg, train_cfg = trial_config(trial, spec, data)
    result = train_model(model_cfg, train_cfg, data, device="cpu")
    study.tell(trial, result.final.val_acc)
    _, score = evaluate(result.model, data.x_test, data.y_test)
    best = study.best_trial
    settings = Settings(database_url=str(engine.url), data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        missing = client.get(f"/studies/{record.id}/model")
        assert missing.status_code == 404 and "no stored model" in missing.json()["detail"]
        stored = store_model(
            study, best, result.model.net, model_cfg, train_cfg, score,
            artifact_store(tmp_path),
        )  # fmt: skip
        queue.set_test_score(engine, record.id, score)
        response = client.get(f"/studies/{record.id}/model")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{record.optuna_name}-trial-{best.number}.pt"'
    )
    saved = load_saved(io.BytesIO(response.content))
    assert saved.model_config == model_cfg and saved.info["test_score"] == score
    _, again = evaluate(saved.net, data.x_test, data.y_test)
    assert again == score == queue.get_study(engine, record.id).test_score
    # optuna-dashboard lists it on the study's page; the study says which trial it is.
    [meta] = get_all_artifact_meta(study)
    assert meta.artifact_id == stored["artifact_id"]
    assert study.user_attrs[MODEL_ATTR]["trial"] == best.number


def test_a_worker_run_keeps_the_model_its_test_score_came_from(sqlite_backend, tmp_path):
    """Through the worker: the finaliser retrains the best trial for the test score and keeps
    that network; the download scores exactly the recorded test score."""
    from studyd.daemon.worker import Worker, WorkerOptions

    engine, storage = sqlite_backend
    spec = load_spec(SPEC.replace("n_trials: 1", "n_trials: 2"))
    record = submit_spec(engine, storage, spec)
    options = WorkerOptions(
        data_dir=tmp_path, device="cpu", once=True, heartbeat=0.2, grace=30, poll=0.05
    )
    Worker(engine, storage, options).run()
    done = queue.get_study(engine, record.id)
    assert done.state == "done" and done.test_score is not None
    settings = Settings(database_url=str(engine.url), data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        response = client.get(f"/studies/{record.id}/model")
    assert response.status_code == 200, response.text
    saved = load_saved(io.BytesIO(response.content))
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    assert saved.info["trial"] == study.user_attrs["test_trial"]
    data = load_dataset("digits", data_dir=tmp_path, seed=spec.dataset.seed)
    assert evaluate(saved.net, data.x_test, data.y_test)[1] == done.test_score
