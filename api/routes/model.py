"""The study's trained model: GET /studies/{id}/model (studyd.daemon.model_artifact)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from optuna.artifacts.exceptions import ArtifactNotFound

from api.context import AppContext, context
from api.errors import responses
from api.params import StudyId
from storage import queue
from storage.artifacts import MODEL_ATTR, artifact_store

router = APIRouter(tags=["studies"])


@router.get(
    "/studies/{study_id}/model",
    response_class=Response,
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "the `models.saved` file: weights and the configs that rebuild them",
        },
        **responses(404, 422, 503),
    },
)
def study_model(study_id: StudyId, ctx: Annotated[AppContext, Depends(context)]) -> Response:
    """The best trial's network as the finaliser retrained it for the test score: load it with
    `models.saved.load_saved`. 404 until the study has one (it is kept with its test score)."""
    record = queue.get_study(ctx.engine, study_id)
    storage = ctx.optuna_storage()
    try:
        attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(record.optuna_name))
    except KeyError:
        attrs = {}
    stored = attrs.get(MODEL_ATTR)
    if not isinstance(stored, dict) or "artifact_id" not in stored:
        raise HTTPException(
            404,
            detail=f"study {study_id} has no stored model: one is kept when its test score is "
            "recorded, after the study is done",
        )
    try:
        with artifact_store(ctx.settings.data_dir).open_reader(stored["artifact_id"]) as reader:
            data = reader.read()
    except ArtifactNotFound as exc:
        raise HTTPException(
            404, detail=f"study {study_id}'s model file is missing from the artifact store"
        ) from exc
    filename = stored.get("filename") or f"study-{study_id}.pt"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
