"""optuna-dashboard over the same storage, mounted at `/dashboard`.

The dashboard's front end is built with fixed absolute paths: the page at `/dashboard`, its
script under `/static/`, its JSON under `/api/` and CSV exports under `/csv/`. So each of those
prefixes is mounted and handed to the dashboard's WSGI app with the full original path. None of
them collides with the studyd API (`/studies`, `/workers`, ...). All are behind the same auth
and body limit as the API (they are ASGI middleware around the whole app).
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from a2wsgi import WSGIMiddleware
from fastapi import FastAPI
from optuna.storages import BaseStorage
from sqlalchemy import Engine
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.context import AppContext
from api.dashboard_guard import WsgiApp, guard_dashboard
from api.errors import RETRY_AFTER_S, database_unavailable
from storage.trials import missing_note_target

logger = logging.getLogger(__name__)

DASHBOARD_PREFIXES = ("/dashboard", "/api", "/static", "/csv")


def guarded_dashboard(
    storage: BaseStorage, engine: Engine, artifact_store: Any | None = None
) -> WsgiApp:
    """optuna-dashboard's WSGI app behind `api.dashboard_guard`: the one app both the API's
    mount and `studyd dashboard --database-url` serve, so their rules are the same."""
    import optuna_dashboard

    dashboard = optuna_dashboard.wsgi(storage, artifact_store=artifact_store)
    return guard_dashboard(dashboard, partial(missing_note_target, engine))


class LazyDashboard:
    """Builds the dashboard on first use: the API starts (and answers 503) with the DB down."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def _build(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                from storage.artifacts import artifact_store

                # The artifact store shows each study's kept model on its page.
                store = artifact_store(self.ctx.settings.data_dir)
                wsgi = guarded_dashboard(self.ctx.optuna_storage(), self.ctx.engine, store)
                self._app = WSGIMiddleware(wsgi)  # type: ignore[arg-type]
            return self._app

    async def app(self) -> ASGIApp:
        if self._app is not None:
            return self._app
        return await anyio.to_thread.run_sync(self._build)


class DashboardMount:
    """One mount point: restores the full path (Starlette strips the prefix into root_path)."""

    def __init__(self, dashboard: LazyDashboard, prefix: str) -> None:
        self._dashboard = dashboard
        self._prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        if self._prefix and root.endswith(self._prefix):
            root = root[: -len(self._prefix)]
        scope = {**scope, "root_path": root}
        try:
            app = await self._dashboard.app()
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            logger.warning("dashboard unavailable: %s", exc)
            await _unavailable()(scope, receive, send)
            return
        await app(scope, receive, OutageAs503(scope, receive, send, self._dashboard.ctx))


class OutageAs503:
    """Wraps `send`: a dashboard 500 while the database is unreachable goes out as our 503.

    The dashboard (bottle) turns every exception into its own 500 page, so a database outage
    cannot be caught as an exception here; its answer is checked instead.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send, ctx: AppContext) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._ctx = ctx
        self._replaced = False

    async def __call__(self, message: Message) -> None:
        failed = message["type"] == "http.response.start" and message["status"] == 500
        if failed and not await anyio.to_thread.run_sync(_database_answers, self._ctx):
            self._replaced = True
            logger.warning("dashboard request failed while the database is unavailable")
            await _unavailable()(self._scope, self._receive, self._send)
            return
        if not self._replaced:  # else: the dashboard's own 500 body, already answered
            await self._send(message)


def _database_answers(ctx: AppContext) -> bool:
    try:
        with ctx.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        if database_unavailable(exc):
            return False
        raise
    return True


def _unavailable() -> JSONResponse:
    return JSONResponse(
        {"detail": "the database is unavailable"},
        503,
        headers={"retry-after": str(RETRY_AFTER_S)},
    )


def mount_dashboard(app: FastAPI, ctx: AppContext) -> None:
    dashboard = LazyDashboard(ctx)
    # `/dashboard` itself, not only what is under it (a Mount would redirect it to `/dashboard/`).
    page = DashboardMount(dashboard, "")
    app.router.routes.append(Route("/dashboard", page, include_in_schema=False))
    for prefix in DASHBOARD_PREFIXES:
        app.mount(prefix, DashboardMount(dashboard, prefix), name=f"dashboard{prefix}")
