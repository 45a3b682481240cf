"""Study routes: submit, list, show, cancel, delete."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from sqlalchemy import Connection, Engine

from api.context import AppContext, context, in_thread
from api.convert import study_detail, study_out
from api.data_paths import check_data_path, input_features
from api.errors import IdempotencyConflict, responses
from api.params import DEFAULT_PAGE_SIZE, Limit, Offset, StudyId, capped
from api.schemas import Page, Study, StudyDetail, StudyState
from api.study_links import optuna_facts
from storage import queue, trials
from studyd.daemon.service import submit_spec
from studyd.spec import SpecError, StudySpec, validate_spec
from studyd.spec.footprint import footprint, over_limit_message

logger = logging.getLogger(__name__)
router = APIRouter(tags=["studies"])

SPEC_EXAMPLE: dict[str, Any] = {
    "name": "digits-shootout",
    "dataset": "digits",
    "model": {"depth": [1, 2], "width": [64, 512]},
    "dropout": {
        "variants": ["none", "standard", "gaussian"],
        "placements": ["hidden"],
        "rate": [0.1, 0.7],
    },
    "training": {"epochs": 5},
    "search": {"n_trials": 24, "sampler": "tpe"},
}
# OpenAPI links: what a client (or a stateful fuzzer) can do with the id a submit returns.
STUDY_LINKS: dict[str, Any] = {
    name: {"operationId": op, "parameters": {"study_id": "$response.body#/id"}}
    for name, op in {
        "GetStudy": "get_study",
        "ListTrials": "list_trials",
        "GetSummary": "study_summary",
        "CancelStudy": "cancel_study",
        "DeleteStudy": "delete_study",
    }.items()
}
_SPEC_SCHEMA = StudySpec.model_json_schema(ref_template="#/components/schemas/{model}")
_SPEC_DEFS = _SPEC_SCHEMA.pop("$defs", {})


def spec_components() -> dict[str, Any]:
    """OpenAPI component schemas of the study spec (the request body of POST /studies)."""
    return {**_SPEC_DEFS, "StudySpec": _SPEC_SCHEMA}


def load_study(ctx: AppContext, study_id: int) -> queue.StudyRecord:
    return queue.get_study(ctx.engine, study_id)


def detail(
    ctx: AppContext,
    record: queue.StudyRecord,
    base_url: str = "",
    bind: Engine | Connection | None = None,
) -> StudyDetail:
    bind = ctx.engine if bind is None else bind
    stats, best = trials.study_progress(bind, record.optuna_name, ctx.best_trials)
    facts = optuna_facts(stats)
    return study_detail(record, stats, best).model_copy(
        update={"dashboard_url": facts.dashboard_url(base_url), "search_ended": facts.search_ended}
    )


def parse_spec(body: dict[str, Any]) -> StudySpec:
    """The spec, or SpecError; a validator crash on odd input is still the client's 422."""
    try:
        return validate_spec(body)
    except (TypeError, AttributeError, KeyError) as exc:
        # A spec validator that should have raised ValueError: logged so it gets fixed.
        logger.warning("spec validation crashed on client input", exc_info=True)
        raise SpecError(f"the spec could not be validated: {exc}") from None


def check_train_memory(spec: StudySpec, input_dim: int | None, limit: int) -> None:
    """SpecError (422) when the spec's largest network needs more memory than `limit` bytes."""
    fp = footprint(spec, input_dim)
    message = over_limit_message(fp, limit, "STUDYD_MAX_TRAIN_BYTES")
    if message:
        raise SpecError(f"{fp.field}: {message}", [{"loc": fp.field, "msg": message}])


def _same_spec(stored: dict[str, Any], submitted: StudySpec) -> bool:
    try:
        return validate_spec(dict(stored)).model_dump(mode="json") == submitted.model_dump(
            mode="json"
        )
    except ValueError:
        return False


@router.post(
    "/studies",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyDetail,
    responses={**responses(409, 413, 422, 503), 201: {"links": STUDY_LINKS}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/StudySpec"},
                    "example": SPEC_EXAMPLE,
                }
            },
        }
    },
)
def submit_study(
    request: Request,
    response: Response,
    spec: Annotated[dict[str, Any], Body()],
    ctx: Annotated[AppContext, Depends(context)],
    priority: Annotated[int, Query(ge=-1000, le=1000, description="higher runs first")] = 0,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="a retried POST with the same key returns the same study",
        ),
    ] = None,
) -> StudyDetail:
    """Queue a study from its spec; 201 with `Location: /studies/{id}`."""
    parsed = parse_spec(spec)
    roots = ctx.settings.allowed_data_roots()
    check_data_path(parsed, roots)
    check_train_memory(parsed, input_features(parsed, roots), ctx.settings.max_train_bytes)
    record = submit_spec(
        ctx.engine,
        ctx.optuna_storage(),
        parsed,
        priority=priority,
        idempotency_key=idempotency_key,
    )
    if idempotency_key is not None and not _same_spec(record.spec, parsed):
        raise IdempotencyConflict(
            f"Idempotency-Key {idempotency_key!r} was already used for study {record.id} "
            "with a different spec"
        )
    response.headers["Location"] = f"/studies/{record.id}"
    return detail(ctx, record, str(request.base_url))


@router.get("/studies", response_model=Page[Study], responses=responses(422, 503))
def list_studies(
    ctx: Annotated[AppContext, Depends(context)],
    state: Annotated[StudyState | None, Query(description="only studies in this state")] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> Page[Study]:
    """Studies, newest first."""
    limit = capped(limit)
    records = queue.list_studies(ctx.engine, state=state, limit=limit, offset=offset)
    total = queue.count_studies(ctx.engine, state=state)
    return Page[Study](
        items=[study_out(r) for r in records], total=total, limit=limit, offset=offset
    )


@router.get("/studies/{study_id}", response_model=StudyDetail, responses=responses(404, 422, 503))
async def get_study(
    study_id: StudyId,
    ctx: Annotated[AppContext, Depends(context)],
    request: Request,
) -> Response:
    """A study: state, progress by trial state, best trial so far, timings, error, its
    optuna-dashboard page and why its search ended early (if it did)."""
    base_url = str(request.base_url)

    # Dumped in the pool: FastAPI's re-validation and dump of the returned model ran on the
    # event loop, which every request's HTTP work shares.
    def read() -> str:
        with ctx.read_connection() as conn:
            return detail(ctx, queue.get_study(conn, study_id), base_url, conn).model_dump_json()

    return Response(await in_thread(read), media_type="application/json")


@router.post(
    "/studies/{study_id}/cancel",
    response_model=Study,
    responses=responses(404, 409, 422, 503),
)
def cancel_study(study_id: StudyId, ctx: Annotated[AppContext, Depends(context)]) -> Study:
    """Cancel a queued or running study (409 once it has finished): no new trial starts, and
    running trials stop within seconds, each FAIL with `user_attrs.error` "cancelled: …"."""
    queue.cancel_study(ctx.engine, study_id)
    return study_out(load_study(ctx, study_id))


@router.delete(
    "/studies/{study_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(404, 409, 422, 503),
)
def delete_study(study_id: StudyId, ctx: Annotated[AppContext, Depends(context)]) -> Response:
    """Delete a study and its trials (409 while it is running: cancel it first)."""
    queue.delete_study(ctx.engine, study_id, ctx.optuna_storage())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
