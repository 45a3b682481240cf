"""Optuna's artifact store under the data directory, where each study's trained model is kept.

Apart from `studyd.daemon.model_artifact` (which writes a model, and so imports torch): the API
only reads, and its process never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore

# The Optuna study's user attribute naming the kept model's artifact.
MODEL_ATTR = "model_artifact"
ARTIFACTS = "artifacts"


def artifact_store(data_dir: Path) -> FileSystemArtifactStore:
    """The artifact store every server and worker sharing `data_dir` uses."""
    base = Path(data_dir) / ARTIFACTS
    base.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(base)
