"""A WSGI layer around optuna-dashboard: what it needs from a request, and what it may change.

Used by the API's `/dashboard` mount and by `studyd dashboard --database-url`, so both behave alike.

- optuna-dashboard reads `Accept-Encoding` as a required header on `/static/*` and `/favicon.ico`
  (a client that sends none got bottle's `KeyError` as a 500); a missing one means "identity".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def guard_dashboard(app: WsgiApp) -> WsgiApp:
    """`app` (optuna-dashboard's WSGI app) behind the checks above."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault("HTTP_ACCEPT_ENCODING", "identity")
        return app(environ, start_response)

    return guarded
