"""A WSGI layer around optuna-dashboard: what it needs from a request, and what it may change.

Used by the API's `/dashboard` mount and by `studyd dashboard --database-url`, so both behave alike.

- optuna-dashboard reads `Accept-Encoding` as a required header on `/static/*` and `/favicon.ico`
  (a client that sends none got bottle's `KeyError` as a 500); a missing one means "identity".
- The dashboard inspects studies; it does not create, delete, rename or finish them. Its write API
  went behind studyd's back: `DELETE /api/studies/N` on a running study answered 204 while the
  workers went on, on a finished one it deleted the trials while studyd still said `done`, and
  `POST /api/studies` made a study studyd does not know. Those requests get a 403 saying what to
  use instead; notes (a human's annotations, nothing studyd reads) are still written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Writes the dashboard may still make: study and trial notes.
ALLOWED_WRITES = (
    ("PUT", re.compile(r"^/api/studies/\d+/note$")),
    ("PUT", re.compile(r"^/api/studies/\d+/\d+/note$")),
)
_INSPECT_ONLY = "the dashboard here inspects studies (and writes notes); "
# (method, path) → what to do instead; the first match wins, the last entry matches any write.
REFUSALS = (
    (
        "POST",
        re.compile(r"^/api/studies$"),
        "studies are created through studyd: `studyd submit SPEC.yaml` or POST /studies",
    ),
    (
        "DELETE",
        re.compile(r"^/api/studies/\d+$"),
        "studies are deleted through studyd, which stops their workers and removes the queue "
        "entry too: `studyd cancel ID` then `studyd delete ID`, or DELETE /studies/ID",
    ),
    (
        "POST",
        re.compile(r"^/api/studies/\d+/rename$"),
        "a renamed study would be lost to studyd, which finds its trials by name",
    ),
    (
        None,
        re.compile(r""),
        "{method} {path} would change studies or trials behind studyd's back; "
        "use the studyd API or CLI",
    ),
)


def refusal(method: str, path: str) -> str | None:
    """Why `method path` may not go through the dashboard, or None when it may."""
    path = "/" + path.strip("/")  # the dashboard itself strips trailing slashes
    if method in READ_METHODS or any(
        method == m and pattern.match(path) for m, pattern in ALLOWED_WRITES
    ):
        return None
    for m, pattern, reason in REFUSALS:
        if (m is None or m == method) and pattern.match(path):
            return _INSPECT_ONLY + reason.format(method=method, path=path)
    return None  # pragma: no cover - the last refusal matches every path


def guard_dashboard(app: WsgiApp) -> WsgiApp:
    """`app` (optuna-dashboard's WSGI app) behind the checks above."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault("HTTP_ACCEPT_ENCODING", "identity")
        reason = refusal(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/"))
        if reason is None:
            return app(environ, start_response)
        # `detail` is studyd's error shape; the dashboard's own page shows `reason`.
        body = json.dumps({"detail": reason, "reason": reason}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response("403 Forbidden", headers)
        return [body]

    return guarded
