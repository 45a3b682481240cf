"""Issue 9 item 5: with a token configured, nothing but health answers without it.

The routes are enumerated from the app the server runs (`create_app`), mounts included, so a
route added later is covered without touching this file. Each is called on that app (in this
process) without a token, with wrong ones and with near misses; all must be 401. There are no
default credentials, and a real `studyd serve` binds to loopback unless told otherwise.
"""

from __future__ import annotations

import base64
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer.main
from fastapi.routing import APIRoute
from reliability_harness import Api, in_process_api, start_server
from starlette.routing import Mount, Route

from api.app import create_app
from studyd.settings import Settings

TOKEN = "rel-token-7f3a9c1e5b"
BASE = "http://testserver"  # the in-process client's host: full URLs keep odd paths as written
OPEN = {"/healthz", "/readyz"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Api]:
    """The app `studyd serve` runs, in this process; paths go as written (absolute URLs)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'studyd.db'}"
    with in_process_api(url, api_token=TOKEN) as api:
        yield api


def app_endpoints(tmp: Path) -> list[tuple[str, str]]:
    """(method, concrete path) for every route and mount of the app as `studyd serve` builds it."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp / 'enum.db'}", api_token=TOKEN))
    found: set[tuple[str, str]] = set()

    def walk(routes: list, prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI >= 0.165 include_router
            if included is not None:
                walk(included.routes, prefix + route.include_context.prefix)
            elif isinstance(route, APIRoute | Route):
                path = prefix + re.sub(r"\{[^}]+\}", "1", route.path)
                found.update((method, path) for method in route.methods or {"GET"})
            elif isinstance(route, Mount):
                for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                    found.add((method, prefix + route.path))
                    found.add((method, f"{prefix}{route.path}/api/studies/1"))
            else:
                raise AssertionError(f"unknown route type {type(route).__name__}: add it here")

    walk(app.routes, "")
    return sorted(found)


WRONG = {
    "none": {},
    "wrong bearer": {"Authorization": "Bearer not-the-token"},
    "empty bearer": {"Authorization": "Bearer"},
    "prefix of token": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "token plus suffix": {"Authorization": f"Bearer {TOKEN}x"},
    "token as scheme": {"Authorization": TOKEN},
    "basic wrong": {"Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()},
    "basic token as user": {
        "Authorization": "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()
    },
    "token in other header": {"X-API-Token": TOKEN, "X-Studyd-Token": TOKEN},
}


def test_every_route_but_health_is_401_without_the_token(server, tmp_path, figure):
    endpoints = app_endpoints(tmp_path)
    methods = {m for m, _ in endpoints}
    paths = {p for _, p in endpoints}
    # The enumeration really sees the routes the issue names.
    assert {"DELETE", "POST", "GET"} <= methods
    assert {"/studies", "/studies/1", "/dashboard", "/openapi.json", "/docs"} <= paths
    tried = 0
    leaks = []
    for method, path in endpoints:
        if path in OPEN:
            continue
        for name, headers in WRONG.items():
            response = server.client.request(
                method, path, headers={"Authorization": "", **headers}, json={"name": "x"}
            )
            tried += 1
            if response.status_code != 401:
                leaks.append((method, path, name, response.status_code))
            elif name == "none":
                assert "www-authenticate" in response.headers
    assert not leaks, leaks
    # With the token the same routes are reachable (nothing is 401).
    for method, path in endpoints:
        if method == "GET":
            assert server.client.get(path).status_code != 401, path
    figure(routes=len(endpoints), requests_tried=tried, unauthorized_leaks=len(leaks))


def test_health_is_open_and_nothing_else_is(server):
    anonymous = server.anonymous()
    for path in OPEN:
        assert anonymous.get(BASE + path).status_code == 200
    for path in (
        "/nope",
        "/healthz/",
        "/HEALTHZ",
        "/healthz/../studies",
        "/readyz;/studies",
        "//studies",
    ):
        response = anonymous.get(BASE + path)
        assert response.status_code == 401, (path, response.status_code)
    accepted = [
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": f"bearer {TOKEN}"},
        {"Authorization": "Basic " + base64.b64encode(f"any:{TOKEN}".encode()).decode()},
    ]
    for headers in accepted:
        assert anonymous.get(BASE + "/studies", headers=headers).status_code == 200


DEFAULT_GUESSES = ["", "admin", "password", "studyd", "changeme", "token", "secret", "studyd-ci"]


def test_no_default_credentials(server, monkeypatch):
    anonymous = server.anonymous()
    for key in [k for k in os.environ if k.startswith("STUDYD_")]:
        monkeypatch.delenv(key)
    assert Settings(_env_file=None).api_token is None
    for guess in DEFAULT_GUESSES:
        for header in (
            f"Bearer {guess}".strip(),
            "Basic " + base64.b64encode(f"admin:{guess}".encode()).decode(),
        ):
            response = anonymous.get(BASE + "/studies", headers={"Authorization": header})
            assert response.status_code == 401, guess


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.254", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.process
def test_binds_loopback_unless_told(tmp_path, figure):
    assert Settings(_env_file=None).host == "127.0.0.1"
    commands = typer.main.get_command(__import__("studyd.cli.main", fromlist=["app"]).app)
    for name in ("serve", "proxy", "dashboard"):
        host = next(p for p in commands.commands[name].params if p.name == "host")
        assert host.default in (None, "127.0.0.1"), (name, host.default)
    server = start_server(f"sqlite:///{tmp_path / 'studyd.db'}", tmp_path)  # no --host
    try:
        port = int(server.url.rsplit(":", 1)[1])
        assert httpx.get(server.url + "/healthz").status_code == 200
        address = _non_loopback_address()
        reachable = None
        if address is not None:
            with socket.socket() as sock:
                sock.settimeout(2)
                reachable = sock.connect_ex((address, port)) == 0
            assert not reachable, f"the server answers on {address}:{port}"
        figure(non_loopback_address=address, reachable_from_it=reachable)
    finally:
        server.stop()
