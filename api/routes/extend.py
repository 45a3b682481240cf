"""A finished study carries on: POST /studies/{id}/extend (storage.study_extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.context import AppContext, context
from api.convert import study_out
from api.errors import responses
from api.params import StudyId
from api.schemas import Study
from storage import queue
from storage.study_extension import extend_finished_study
from studyd.spec import validate_spec
from studyd.spec.limits import MAX_TRIALS

router = APIRouter(tags=["studies"])


class Extension(BaseModel):
    """How many more distinct runs the study gets."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(ge=1, le=MAX_TRIALS, strict=True, examples=[10])


@router.post(
    "/studies/{study_id}/extend", response_model=Study, responses=responses(404, 409, 422, 503)
)
def extend_study(
    study_id: StudyId,
    extension: Annotated[Extension, Body()],
    ctx: Annotated[AppContext, Depends(context)],
) -> Study:
    """Give a done or cancelled study `trials` more distinct runs (409 in any other state): it is
    queued again, the sampler continues from its trials, and once done its verdict, summary,
    dashboard note and test score are recomputed (the test score is null until then)."""
    # With `repeats`, the configurations that now lead and have no replicates get them first.
    spec = validate_spec(queue.get_study(ctx.engine, study_id).spec)
    extended = extend_finished_study(
        ctx.engine, study_id, extension.trials, replicates=bool(spec.repeats)
    )
    return study_out(extended)
