"""A small typed HTTP client for the studyd REST API (what the CLI, the demo and reports use).

Every failure a user can cause or meet is raised as a `ClientError` subclass whose message is one
readable line; the CLI prints it and exits with the error's `exit_code`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

JSON = dict[str, Any]
# The API caps page sizes; asking for more than the cap is answered with the cap.
PAGE_SIZE = 100
# Fields every studyd answer of a kind has: a body without them did not come from studyd.
PAGE_FIELDS = ("items", "total", "limit", "offset")
STUDY_FIELDS = ("id", "state")
# The detail of Starlette's 404 for a path that no route matches (studyd's own 404s name the id).
ROUTE_NOT_FOUND = "Not Found"


class ClientError(Exception):
    """A failed request, with a message that fits on one line."""

    exit_code = 1

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ServerUnreachable(ClientError):
    """No server answered at the URL (down, wrong port, network)."""

    exit_code = 3


class NotStudyd(ServerUnreachable):
    """Something answered at the URL, but not a studyd API (optuna-dashboard's `/api`, a proxy)."""


class Unauthorized(ClientError):
    """401: the server wants a token (`STUDYD_API_TOKEN`) that was missing or wrong."""

    exit_code = 4


class NotFound(ClientError):
    """404: no such study, trial or route."""

    exit_code = 5


class Conflict(ClientError):
    """409: the change is illegal in the study's current state (e.g. cancel a finished study)."""

    exit_code = 6


class InvalidRequest(ClientError):
    """422 (or a local spec check): the request or spec is invalid; `field` names the culprit."""

    exit_code = 7

    def __init__(self, message: str, *, field: str | None = None, status: int | None = 422):
        super().__init__(message, status=status)
        self.field = field


class ServerError(ClientError):
    """Any other non-2xx answer (413, 503, 5xx)."""

    exit_code = 8


def _field_name(loc: Any) -> str:
    """`["body", "dropout", "rate"]` -> `dropout.rate` (FastAPI prefixes locations with `body`)."""
    if not isinstance(loc, list | tuple):
        return str(loc)
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


def describe_validation_errors(body: Any) -> tuple[str, str | None]:
    """One line for a 422 body, plus the first offending field when one is named."""
    detail = body.get("detail") if isinstance(body, dict) else None
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's default RequestValidationError body
        errors, detail = detail, None
    field = None
    pieces: list[str] = []
    for err in errors or []:
        if not isinstance(err, dict):
            pieces.append(str(err))
            continue
        name = err.get("field") or _field_name(err.get("loc", ""))
        field = field or name or None
        msg = err.get("msg") or err.get("message") or ""
        pieces.append(f"{name}: {msg}" if name else str(msg))
    if isinstance(detail, str) and detail:
        if pieces and not any(p in detail for p in pieces):
            return f"{detail} ({'; '.join(pieces[:3])})", field
        return detail, field
    return "; ".join(pieces[:3]) or "the server rejected the request as invalid", field


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return text[0] if text else response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) and detail else response.reason_phrase


class StudydClient:
    """Typed calls over the studyd REST API (`/studies`, `/workers`, `/healthz`)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> StudydClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ServerUnreachable(
                f"cannot reach the studyd server at {self.url} ({_reason(exc)}); "
                "start one with `studyd serve` or point --url / STUDYD_URL at it"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"the studyd server at {self.url} did not answer in time"
            ) from exc
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"request to {self.url}{path} failed: {exc}") from exc
        if response.is_success:
            return response
        if not _studyd_error(response):
            # Every studyd error is `{"detail": ...}`; anything else came from another server.
            raise self._not_studyd(method, path, response)
        raise self._error_for(response)

    def _not_studyd(self, method: str, path: str, response: httpx.Response) -> NotStudyd:
        return NotStudyd(
            f"{self.url} is not a studyd API: {method} {path} was answered {response.status_code} "
            f"with {_what_answered(response)}; {self._where_studyd_is()}"
        )

    def _no_route(self, response: httpx.Response) -> NotStudyd:
        asked = response.request
        return NotStudyd(
            f"no studyd API at {self.url}: {asked.method} {asked.url.path} was answered "
            f"404 {ROUTE_NOT_FOUND} with {_what_answered(response)}; {self._where_studyd_is()}",
            status=404,
        )

    def _where_studyd_is(self) -> str:
        """What to do about a URL that is not a studyd API: the server's root when it is one."""
        root = _server_root(self.url)
        try:
            health = self._http.get(f"{root}/healthz")
            studyd_at_root = health.is_success and health.json().get("status") == "ok"
        except (httpx.HTTPError, ValueError, AttributeError):
            studyd_at_root = False
        if studyd_at_root and root != self.url:
            return f"a studyd server answers at {root}: use --url {root}"
        if studyd_at_root:
            return "the studyd server there has no such route (an older version?)"
        return "point --url (or STUDYD_URL) at the studyd server's root, e.g. http://HOST:8000"

    def _json(self, method: str, path: str, response: httpx.Response, *fields: str) -> Any:
        """The body of a studyd answer, which has `fields`; `NotStudyd` when it is not one."""
        try:
            body = response.json()
        except ValueError:
            raise self._not_studyd(method, path, response) from None
        if fields and not (isinstance(body, dict) and all(f in body for f in fields)):
            # e.g. `--url http://host:8000/api`: optuna-dashboard's `/api/studies` is a 200 too,
            # with `study_summaries` instead of a page; read as an empty page it listed nothing.
            raise self._not_studyd(method, path, response)
        return body

    def _error_for(self, response: httpx.Response) -> ClientError:
        status = response.status_code
        if status == 401:
            return Unauthorized(
                f"the server at {self.url} refused the token (401): set STUDYD_API_TOKEN "
                "to the server's token",
                status=status,
            )
        if status == 403:
            return Unauthorized(f"forbidden (403): {_detail(response)}", status=status)
        if status == 404 and _detail(response) == ROUTE_NOT_FOUND:
            # Starlette's answer for a path no route matches: the URL is wrong, not the id.
            return self._no_route(response)
        if status == 404:
            return NotFound(_detail(response), status=status)
        if status == 409:
            return Conflict(_detail(response), status=status)
        if status == 422:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text}
            message, field = describe_validation_errors(body)
            return InvalidRequest(message, field=field, status=status)
        return ServerError(f"server answered {status}: {_detail(response)}", status=status)

    def _get(self, path: str, *fields: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._json("GET", path, self._request("GET", path, params=clean), *fields)

    # -- health ------------------------------------------------------------------------------

    def health(self) -> JSON:
        return self._get("/healthz", "status")

    def ready(self) -> JSON:
        return self._get("/readyz", "status")

    # -- studies -----------------------------------------------------------------------------

    def submit(
        self, spec: JSON, *, priority: int | None = None, idempotency_key: str | None = None
    ) -> JSON:
        """POST /studies: queue a study; returns the created study (with its `id`)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        params = {"priority": priority} if priority is not None else {}
        response = self._request("POST", "/studies", json=spec, params=params, headers=headers)
        return self._json("POST", "/studies", response, *STUDY_FIELDS)

    def list_studies(
        self, *, state: str | None = None, limit: int = PAGE_SIZE, offset: int = 0
    ) -> JSON:
        return self._get("/studies", *PAGE_FIELDS, state=state, limit=limit, offset=offset)

    def study(self, study_id: int) -> JSON:
        return self._get(f"/studies/{study_id}", *STUDY_FIELDS)

    def cancel(self, study_id: int) -> JSON:
        path = f"/studies/{study_id}/cancel"
        return self._json("POST", path, self._request("POST", path), *STUDY_FIELDS)

    def extend(self, study_id: int, trials: int) -> JSON:
        """POST /studies/{id}/extend: a done or cancelled study gets `trials` more runs."""
        path = f"/studies/{study_id}/extend"
        response = self._request("POST", path, json={"trials": trials})
        return self._json("POST", path, response, *STUDY_FIELDS)

    def model_file(self, study_id: int) -> bytes:
        """GET /studies/{id}/model: the trained best model (`models.saved` format)."""
        path = f"/studies/{study_id}/model"
        response = self._request("GET", path)
        if not response.headers.get("content-type", "").startswith("application/octet-stream"):
            raise self._not_studyd("GET", path, response)
        return response.content

    def delete(self, study_id: int) -> None:
        response = self._request("DELETE", f"/studies/{study_id}")
        if response.status_code != 204:  # studyd answers a delete with 204 and no body
            raise self._not_studyd("DELETE", f"/studies/{study_id}", response)

    def summary(self, study_id: int) -> JSON:
        return self._get(f"/studies/{study_id}/summary", "study_id", "verdict")

    def compare(self, study_ids: list[int], *, alpha: float | None = None) -> JSON:
        """GET /compare: the studies' variants ranked across them (Friedman, Nemenyi)."""
        ids = ",".join(str(i) for i in study_ids)
        return self._get("/compare", "answer", "variants", ids=ids, alpha=alpha)

    # -- trials ------------------------------------------------------------------------------

    def trials(
        self,
        study_id: int,
        *,
        state: str | None = None,
        variant: str | None = None,
        sort: str | None = None,
        limit: int = PAGE_SIZE,
        offset: int = 0,
    ) -> JSON:
        """One page of GET /studies/{id}/trials."""
        return self._get(
            f"/studies/{study_id}/trials",
            *PAGE_FIELDS,
            state=state,
            variant=variant,
            sort=sort,
            limit=limit,
            offset=offset,
        )

    def iter_trials(
        self, study_id: int, *, limit: int | None = None, **filters: Any
    ) -> Iterator[JSON]:
        """Every trial matching the filters, one page at a time (never one huge request)."""
        offset, seen = 0, 0
        while True:
            page_size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - seen)
            if page_size <= 0:
                return
            page = self.trials(study_id, limit=page_size, offset=offset, **filters)
            items = page.get("items", [])
            yield from items
            seen += len(items)
            offset += len(items)
            if not items or offset >= page.get("total", 0):
                return

    def trial(self, study_id: int, number: int) -> JSON:
        return self._get(f"/studies/{study_id}/trials/{number}", "number", "state")

    def export_csv(self, study_id: int) -> str:
        """Every trial of the study as CSV (`GET /studies/{id}/export.csv`)."""
        path = f"/studies/{study_id}/export.csv"
        response = self._request("GET", path)
        if not response.headers.get("content-type", "").startswith("text/csv"):
            raise self._not_studyd("GET", path, response)
        return response.text

    # -- workers -----------------------------------------------------------------------------

    def workers(self, *, alive_within: float | None = None) -> Any:
        params = {} if alive_within is None else {"alive_within": alive_within}
        response = self._request("GET", "/workers", params=params)
        workers = self._json("GET", "/workers", response)
        if not isinstance(workers, list):
            raise self._not_studyd("GET", "/workers", response)
        return workers

    # -- families ----------------------------------------------------------------------------

    def families(self) -> Any:
        """The model families installed on the API host (`GET /families`)."""
        response = self._request("GET", "/families")
        families = self._json("GET", "/families", response)
        if not isinstance(families, list):
            raise self._not_studyd("GET", "/families", response)
        return families


def _server_root(url: str) -> str:
    """`http://host:8000/foo/` → `http://host:8000`: where a studyd API would answer."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _studyd_error(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("detail"), str | list)


def _what_answered(response: httpx.Response) -> str:
    """What came back, in a few words: its JSON fields or its content type, and the server."""
    server = response.headers.get("server")
    by = f" (server: {server})" if server else ""
    try:
        body = response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return f"{kind}{by}"
    if isinstance(body, dict):
        names = ", ".join(sorted(body)[:5]) or "none"
        hint = " — optuna-dashboard's API" if "study_summaries" in body or "reason" in body else ""
        return f"JSON with fields {names}{hint}{by}"
    return f"a JSON {type(body).__name__}{by}"


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0] if text else type(exc).__name__
