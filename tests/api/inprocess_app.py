"""The API in-process: `create_app` over a real database, driven by FastAPI's `TestClient`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from storage import migrate
from studyd.settings import Settings


@contextmanager
def api_client(database_url: str, **settings: Any) -> Iterator[TestClient]:
    """A `TestClient` over `create_app`, the schema made first as `studyd serve` makes it."""
    migrate.ensure_schema(database_url)
    app = create_app(Settings(database_url=database_url, **settings))
    with TestClient(app) as client:
        yield client


def study_count(client: TestClient) -> int:
    return client.get("/studies", params={"limit": 1}).json()["total"]
