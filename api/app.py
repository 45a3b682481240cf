"""The FastAPI app: routes, error mapping, auth, body limit, offline docs, optuna-dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.auth import TokenAuthMiddleware
from api.body_limit import BodyLimitMiddleware
from api.context import AppContext, settle_heap, warm_summary_modules
from api.dashboard import mount_dashboard
from api.docs import mount_docs
from api.errors import install_error_handlers
from api.routes import (
    compare,
    export,
    extend,
    families,
    health,
    model,
    studies,
    summary,
    trials,
    workers,
)
from studyd import __version__
from studyd.settings import Settings

DESCRIPTION = """
Submit dropout hyperparameter studies, watch them run, and read their verdicts.

**Auth.** When the server has `STUDYD_API_TOKEN` set, every route except `/healthz` and
`/readyz` needs `Authorization: Bearer <token>` — this page, `/openapi.json` and `/dashboard`
included. Browsers may send the same token as the password of HTTP Basic auth (any user name);
they prompt for it when a page answers 401.

**Errors** are `{"detail": "<one line>"}`; 422s add `errors: [{loc, msg}]` naming each field.
404 unknown id, 409 illegal state change, 413 body over the limit, 503 database unreachable.

**Pages** are `{"items", "total", "limit", "offset"}`; page sizes are capped at 500.

**Dashboard.** optuna-dashboard over the same database is at [/dashboard](/dashboard).
"""


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).update(studies.spec_components())
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "STUDYD_API_TOKEN, when the server has one",
            }
        }
        # Optional: an open server (no token) needs none, so `{}` is listed as an alternative.
        schema["security"] = [{"bearer": []}, {}]
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """The studyd API over `settings.database_url` (settings from the environment by default)."""
    settings = settings or Settings()
    ctx = AppContext.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The sync routes run in anyio's thread pool, 40 threads by default: on a few cores they
        # fought over the GIL (more system than user time under load) for no extra throughput,
        # since every route is a few milliseconds of Python around short queries.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        settle_heap()
        app.state.warm_summary = warm_summary_modules()
        yield
        ctx.close()

    app = FastAPI(
        title="studyd",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # operationIds are the route functions' names (`get_study`), which OpenAPI links use.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.context = ctx
    for module in (
        studies,
        extend,
        trials,
        summary,
        model,
        compare,
        export,
        workers,
        families,
        health,
    ):
        app.include_router(module.router)
    install_error_handlers(app)
    mount_docs(app)
    mount_dashboard(app, ctx)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    # Added last = runs first: auth before the body is read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.api_token:
        app.add_middleware(TokenAuthMiddleware, token=settings.api_token)
    return app
