"""Bearer auth on every route but health; 413 for bodies over the limit, declared or streamed."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from api_harness import Api, in_process_api, spec
from serve_harness import start_server

TOKEN = "s3cret-token-for-tests"
MAX_BODY = 4096


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Iterator[Api]:
    """The app with a token and a 4 KiB body limit (SQLite: auth is backend-independent)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'studyd.db'}"
    with in_process_api(url, api_token=TOKEN, max_body_bytes=MAX_BODY) as api:
        yield api


def _every_route(study_id: int) -> list[tuple[str, str]]:
    return [
        ("POST", "/studies"),
        ("GET", "/studies"),
        ("GET", f"/studies/{study_id}"),
        ("GET", f"/studies/{study_id}/trials"),
        ("GET", f"/studies/{study_id}/trials/0"),
        ("GET", f"/studies/{study_id}/summary"),
        ("POST", f"/studies/{study_id}/cancel"),
        ("DELETE", f"/studies/{study_id}"),
        ("GET", "/workers"),
        ("GET", "/docs"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("GET", "/dashboard"),
        ("GET", "/api/studies"),
        ("GET", "/static/bundle.js"),
        ("GET", "/docs-assets/swagger-ui.css"),
    ]


def test_every_route_but_health_needs_the_token(guarded: Api):
    study = guarded.client.post("/studies", json=spec()).json()
    anonymous = guarded.anonymous()
    wrong = {"Authorization": "Bearer not-the-token"}
    for method, path in _every_route(study["id"]):
        for headers in ({}, wrong, {"Authorization": TOKEN}, {"Authorization": "Basic"}):
            response = anonymous.request(method, path, headers=headers, json=spec())
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert response.json() == {"detail": "missing or wrong bearer token"}
            assert "Bearer" in response.headers["www-authenticate"]
    assert guarded.client.get(f"/studies/{study['id']}").status_code == 200
    for path in ("/healthz", "/readyz"):
        assert anonymous.get(path).status_code == 200
    assert guarded.client.get("/dashboard").status_code == 200
    anonymous.close()


def test_browsers_may_send_the_token_as_basic_auth_password(guarded: Api):
    good = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    bad = base64.b64encode(b"anyone:guess").decode()
    browser = guarded.anonymous()
    assert browser.get("/docs", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert browser.get("/docs", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    assert browser.get("/docs", headers={"Authorization": "Basic %%%"}).status_code == 401


def test_declared_body_over_the_limit_is_413_before_reading_it(guarded: Api):
    big = {**spec(), "baselines": [{"note": "x" * MAX_BODY}]}
    response = guarded.client.post("/studies", json=big)
    assert response.status_code == 413
    assert str(MAX_BODY) in response.json()["detail"]


def test_streamed_body_over_the_limit_is_413(guarded: Api):
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "streamed", "baselines": ["'
        for _ in range(10):
            yield b"y" * 1024
        yield b'"]}'

    response = guarded.client.post(
        "/studies", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


def test_bodies_within_the_limit_still_work_when_streamed(guarded: Api):
    body = httpx.Request("POST", "/", json=spec()).content
    assert len(body) < MAX_BODY

    def chunks() -> Iterator[bytes]:
        yield body[:10]
        yield body[10:]

    response = guarded.client.post(
        "/studies", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.process
def test_a_body_streamed_in_chunks_over_a_socket_is_413(tmp_path):
    """The in-process client hands the app a body whole; uvicorn hands it chunk by chunk."""
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    server = start_server(url, tmp_path, env={"STUDYD_MAX_BODY_BYTES": str(MAX_BODY)})
    try:
        chunks = [b'{"name": "streamed", "baselines": ["', *[b"y" * 1024] * 10, b'"]}']
        response = server.client.post(
            "/studies", content=iter(chunks), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert "Traceback" not in server.log()
    finally:
        server.stop()
