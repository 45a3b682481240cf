"""Worker routes: who is alive, on which device, doing what."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from api.context import AppContext, context
from api.convert import worker_out
from api.errors import responses
from api.schemas import Worker
from storage import queue

router = APIRouter(tags=["workers"])


@router.get("/workers", response_model=list[Worker], responses=responses(422, 503))
def list_workers(
    request: Request,
    ctx: Annotated[AppContext, Depends(context)],
    alive_within: Annotated[
        float | None,
        Query(
            gt=0,
            le=7 * 24 * 3600,
            description="seconds since the last heartbeat (default: heartbeat grace period)",
        ),
    ] = None,
) -> list[Worker]:
    """Live workers: device, current study and trial, last heartbeat; and the workers
    `studyd serve` embeds that are down (restarting, or failed: they kept dying)."""
    window = alive_within if alive_within is not None else ctx.settings.heartbeat_grace
    alive = [worker_out(w) for w in queue.list_workers(ctx.engine, alive_within=window)]
    embedded = getattr(request.app.state, "embedded_workers", None)
    if embedded is None:
        return alive
    # A restarted embedded worker is a new process with a new row: its restarts are the server's.
    restarts = embedded.restarts_by_pid()
    alive = [w.model_copy(update={"restarts": restarts.get(w.pid, 0)}) for w in alive]
    return alive + [Worker(**_down(report)) for report in embedded.not_running()]


def _down(report: dict) -> dict:
    """A down embedded worker as a `Worker` with no row."""
    empty = dict.fromkeys(("id", "pid", "study_id", "trial_id", "trial_number"))
    return empty | {"host": "", "device": "", "started_at": None, "last_heartbeat": None} | report
