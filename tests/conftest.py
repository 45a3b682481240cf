"""Shared fixtures: database URLs over every backend (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from storage.throwaway_database import throwaway_database

PG_ADMIN_URL = os.environ.get("STUDYD_TEST_POSTGRES_URL", "")
REQUIRE_SERVICES = os.environ.get("STUDYD_TEST_REQUIRE_SERVICES") == "1"


def _pg_admin_connect():
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


def _postgres_unavailable_reason() -> str | None:
    if not PG_ADMIN_URL:
        return "STUDYD_TEST_POSTGRES_URL is not set (.ci/run sets it after starting PostgreSQL)"
    try:
        with _pg_admin_connect():
            return None
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no server"
        return f"PostgreSQL at STUDYD_TEST_POSTGRES_URL is unreachable: {exc}"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    reason = _postgres_unavailable_reason()
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    return PG_ADMIN_URL


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'studyd.db'}"


@pytest.fixture
def postgres_url(postgres_admin_url) -> Iterator[str]:
    with throwaway_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'studyd.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        with throwaway_database(admin) as url:
            yield url
