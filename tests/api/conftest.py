"""The app in this process per backend for the API tests (processes only where a test needs one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_harness import Api, in_process_api

from storage.throwaway_database import throwaway_database


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def api(request, tmp_path_factory) -> Iterator[Api]:
    """One app per backend for the session, its lifespan run; tests make their own studies."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'studyd.db'}"
        with in_process_api(url) as app:
            yield app
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    with throwaway_database(admin_url) as url, in_process_api(url) as app:
        yield app
