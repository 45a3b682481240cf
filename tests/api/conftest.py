"""A real `studyd serve --no-workers` process per backend for the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_harness import Server, start_server

from storage.throwaway_database import throwaway_database


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def server(request, tmp_path_factory) -> Iterator[Server]:
    """One API-only server per backend for the session; tests make their own studies."""
    tmp = tmp_path_factory.mktemp("api")
    if request.param == "sqlite":
        srv = start_server(f"sqlite:///{tmp / 'studyd.db'}", tmp)
        yield srv
        srv.stop()
        return
    with throwaway_database(request.getfixturevalue("postgres_admin_url")) as url:
        srv = start_server(url, tmp)
        yield srv
        srv.stop()
