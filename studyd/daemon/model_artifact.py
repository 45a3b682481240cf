"""The study's retrained best model, kept in Optuna's artifact store under the data directory.

The finaliser retrains the best trial to score it on the test split; that network is worth
keeping. `store_model` uploads it (`models.saved` format) as an artifact of the study —
optuna-dashboard lists it on the study's page (Optuna attaches artifacts to running trials only:
the best trial has long finished) — and records where it is and which trial it is on the Optuna
study (`MODEL_ATTR`), which `GET /studies/{id}/model` reads.

The worker hands `model_keeper(data_dir)` to its finaliser (`StudyFinalizer.keep_model`),
which calls it with the retrained network once the test score is measured.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import FrozenTrial
from torch import nn

from models.config import ModelConfig, TrainConfig
from models.saved import model_bytes
from storage.artifacts import MODEL_ATTR, artifact_store

__all__ = ["MODEL_ATTR", "artifact_store", "model_keeper", "store_model"]


def model_keeper(data_dir: Path):
    """`store_model` into the artifact store under `data_dir` (the finaliser's `keep_model`)."""

    def keep(study, trial, net, model_cfg, train_cfg, score) -> dict[str, Any]:
        return store_model(study, trial, net, model_cfg, train_cfg, score, artifact_store(data_dir))

    return keep


def store_model(
    study: optuna.Study,
    trial: FrozenTrial,
    net: nn.Module,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    test_score: float | None,
    store: FileSystemArtifactStore,
) -> dict[str, Any]:
    """Upload `trial`'s network as an artifact of `study`; returns what `MODEL_ATTR` holds."""
    filename = f"{study.study_name}-trial-{trial.number}.pt"
    data = model_bytes(
        net, model_cfg, train_cfg, study=study.study_name, trial=trial.number, test_score=test_score
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        path.write_bytes(data)
        artifact_id = upload_artifact(
            artifact_store=store,
            file_path=str(path),
            study_or_trial=study,
            mimetype="application/octet-stream",
        )
    record = {
        "artifact_id": artifact_id,
        "trial": trial.number,
        "filename": filename,
        "bytes": len(data),
        "test_score": test_score,
    }
    study.set_user_attr(MODEL_ATTR, record)
    return record
