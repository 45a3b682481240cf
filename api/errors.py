"""The one place exceptions become HTTP status codes and `{"detail": ...}` bodies.

404 unknown ids, 409 illegal state changes, 422 bad input (naming the field), 413 oversized
bodies (see `api.body_limit`), 503 when the database cannot be reached. A client can never cause
a 500: anything unexpected is logged with its traceback and answered with one line.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.schemas import ErrorBody
from storage.queue import IllegalStateChange, StudyNotFound
from storage.write_probe import DatabaseNotWritable, write_refused
from studyd.spec import SpecError

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying a 503.
RETRY_AFTER_S = 5

_ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "missing or wrong bearer token (when a token is configured)",
    404: "no such study or trial",
    409: "conflicts with the current state (an illegal state change, studies not ready to compare)",
    413: "request body over the configured limit",
    422: "invalid request: `errors` names each offending field",
    503: "the database is unreachable; retry later",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route that can answer these error codes."""
    return {c: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[c]} for c in codes}


class TrialNotFound(LookupError):
    """No trial with that number in the study."""


class IdempotencyConflict(RuntimeError):
    """An Idempotency-Key reused with a different spec."""


def database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database is down, unreachable or takes no writes", not
    "bad request" (a PostgreSQL standby's refused write was a 500)."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and (
        exc.connection_invalidated or write_refused(exc.orig)
    ):
        return True
    return isinstance(
        exc,
        sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.TimeoutError
        | sqlalchemy.exc.DisconnectionError
        | psycopg.OperationalError
        | sqlite3.OperationalError
        | ConnectionError,
    )


def error(status: int, detail: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc] if isinstance(loc, list | tuple) else [str(loc)]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts)


def _json_position(doc: Any, pos: Any) -> str:
    """`line L, column C` (1-based) of a character offset, as editors and `json.tool` say it."""
    if not isinstance(doc, str) or not isinstance(pos, int):
        return f"offset {pos}"
    line, column = doc.count("\n", 0, pos) + 1, pos - doc.rfind("\n", 0, pos)
    return f"line {line}, column {column}"


def _error_entry(e: dict[str, Any], body: Any) -> dict[str, str]:
    if e.get("type") == "json_invalid":
        # FastAPI puts the decoder's character offset where a field name goes ("9: JSON decode
        # error"); a reader needs the line and column, and what the decoder expected there.
        loc = tuple(e.get("loc", ()))
        where = _json_position(body, loc[-1] if loc else None)
        reason = (e.get("ctx") or {}).get("error", "invalid JSON")
        return {"loc": "body", "msg": f"invalid JSON at {where}: {reason}"}
    return {"loc": _field(e.get("loc", ())), "msg": str(e.get("msg", "invalid"))}


def validation_body(exc: RequestValidationError) -> dict[str, Any]:
    errors = [_error_entry(e, exc.body) for e in exc.errors()]
    first = errors[0] if errors else {"loc": "", "msg": "invalid request"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return {"detail": f"{first['loc']}: {first['msg']}{more}", "errors": errors}


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error(503, f"the database is unavailable: {_first_line(exc)}")
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error(500, "internal server error; see the server log")


# The methods a 405's `Allow` may name (CONNECT and TRACE are never routed).
ROUTABLE_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path.

    Starlette's 405 names the methods of the first route whose path matched: `/studies` is a GET
    route and a POST route, so its `Allow` named one of them (RFC 9110 §15.5.6 wants them all).
    Each method is tried against the app's routes as the router itself would match it.
    """
    routes = request.app.router.routes
    return [
        method
        for method in ROUTABLE_METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Register every exception → status mapping on `app`."""

    @app.exception_handler(StudyNotFound)
    async def _not_found(_: Request, exc: StudyNotFound) -> JSONResponse:
        return error(404, _first_line(exc))

    @app.exception_handler(TrialNotFound)
    async def _trial_not_found(_: Request, exc: TrialNotFound) -> JSONResponse:
        return error(404, _first_line(exc))

    @app.exception_handler(IllegalStateChange)
    async def _illegal(_: Request, exc: IllegalStateChange) -> JSONResponse:
        return error(409, _first_line(exc))

    @app.exception_handler(IdempotencyConflict)
    async def _idempotency(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return error(409, _first_line(exc))

    @app.exception_handler(SpecError)
    async def _spec(_: Request, exc: SpecError) -> JSONResponse:
        return error(422, _first_line(exc), errors=exc.errors)

    @app.exception_handler(DatabaseNotWritable)
    async def _not_writable(_: Request, exc: DatabaseNotWritable) -> JSONResponse:
        return error(503, _first_line(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_body(exc), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's 400 for a body it cannot decode (not UTF-8): bad input, documented as 422.
            detail = f"body: {exc.detail}"
            return error(422, detail, errors=[{"loc": "body", "msg": str(exc.detail)}])
        response = error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    # Database outages surface as many exception types; all of them land here (and only
    # them become 503; anything else unexpected is a logged 500).
    app.add_exception_handler(sqlalchemy.exc.SQLAlchemyError, _unexpected)
    app.add_exception_handler(psycopg.Error, _unexpected)
    app.add_exception_handler(sqlite3.Error, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
