"""A WSGI layer around optuna-dashboard: what it needs from a request, and what it may change.

Used by the API's `/dashboard` mount and by `studyd dashboard --database-url`, so both behave alike.

- optuna-dashboard reads `Accept-Encoding` as a required header on `/static/*` and `/favicon.ico`
  (a client that sends none got bottle's `KeyError` as a 500); a missing one means "identity".
- The dashboard inspects studies; it does not create, delete, rename or finish them. Its write API
  went behind studyd's back: `DELETE /api/studies/N` on a running study answered 204 while the
  workers went on, on a finished one it deleted the trials while studyd still said `done`, and
  `POST /api/studies` made a study studyd does not know. Those requests get a 403 saying what to
  use instead; notes (a human's annotations, nothing studyd reads) are still written.
- A note is checked first: `{"version": int, "body": str}` for a study (and trial of that study)
  that exists. The dashboard answered a note for an unknown study with a 500 and stored one for an
  unknown trial of a known study; those are 400 and 404 now, and nothing is stored.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Writes the dashboard may still make: study and trial notes.
NOTE_PATH = re.compile(r"^/api/studies/(\d+)(?:/(\d+))?/note$")
ALLOWED_WRITES = (("PUT", NOTE_PATH),)
# A note is a human's text; a body over this is not one (the API's body limit is larger).
MAX_NOTE_BYTES = 256 * 1024
# (Optuna study id, trial id or None) → why there is nothing to annotate, or None.
NoteTargetCheck = Callable[[int, int | None], str | None]
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
        re.compile(r"^/dashboard/api/"),
        "its JSON API is at /api/, not under /dashboard/: notes are written with "
        "PUT /api/studies/STUDY_ID/note or PUT /api/studies/STUDY_ID/TRIAL_ID/note",
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


def guard_dashboard(app: WsgiApp, missing_note_target: NoteTargetCheck) -> WsgiApp:
    """`app` (optuna-dashboard's WSGI app) behind the checks above."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault("HTTP_ACCEPT_ENCODING", "identity")
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        reason = refusal(method, path)
        if reason is not None:
            return _answer(start_response, "403 Forbidden", reason)
        note = NOTE_PATH.match("/" + path.strip("/")) if method == "PUT" else None
        if note is not None:
            status_reason = _check_note(environ, note, missing_note_target)
            if status_reason is not None:
                return _answer(start_response, *status_reason)
        return app(environ, start_response)

    return guarded


def _check_note(
    environ: dict[str, Any], target: re.Match[str], missing: NoteTargetCheck
) -> tuple[str, str] | None:
    """(status, reason) for a note that must not be stored, or None; the body is put back."""
    try:
        size = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        size = -1
    if not 0 <= size <= MAX_NOTE_BYTES:
        return "413 Content Too Large", f"a note body is at most {MAX_NOTE_BYTES} bytes"
    raw = environ["wsgi.input"].read(size) if size else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    problem = _note_body_problem(raw)
    if problem is not None:
        return "400 Bad Request", problem
    study_id, trial_id = int(target.group(1)), target.group(2)
    absent = missing(study_id, None if trial_id is None else int(trial_id))
    return None if absent is None else ("404 Not Found", absent)


def _note_body_problem(raw: bytes) -> str | None:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    version = body.get("version") if isinstance(body, dict) else None
    text = body.get("body") if isinstance(body, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or not isinstance(text, str):
        return 'a note is JSON {"version": <the next version, an integer>, "body": "<text>"}'
    return None


def _answer(start_response: Callable[..., Any], status: str, reason: str) -> list[bytes]:
    # `detail` is studyd's error shape; the dashboard's own page shows `reason`.
    body = json.dumps({"detail": reason, "reason": reason}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]
