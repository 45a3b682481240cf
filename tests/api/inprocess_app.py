"""The API served by uvicorn on a thread of this process (`served_app`), and a study count."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from storage import migrate
from studyd.client.readiness import free_port
from studyd.settings import Settings


@contextmanager
def served_app(database_url: str, **settings: Any) -> Iterator[str]:
    """The app on a real port, served by uvicorn on a thread of this process: its base URL.

    For what a `TestClient` cannot show: the CLI's own HTTP client talking to a real socket.
    """
    migrate.ensure_schema(database_url)
    app = create_app(Settings(database_url=database_url, **settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="studyd-test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def study_count(client: TestClient) -> int:
    return client.get("/studies", params={"limit": 1}).json()["total"]
