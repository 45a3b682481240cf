"""Liveness and readiness probes (open even when a token is configured)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from api.context import AppContext, context
from api.errors import responses
from api.schemas import Health, Ready
from storage.write_probe import check_writable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (says nothing about the database)."""
    return Health()


@router.get("/readyz", response_model=Ready, responses=responses(503))
def readyz(ctx: Annotated[AppContext, Depends(context)]) -> Ready:
    """The database answers and takes writes (503 when it does not: down, read-only, disk full)."""
    with ctx.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    check_writable(ctx.engine)
    return Ready()
