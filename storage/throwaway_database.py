"""Throwaway PostgreSQL databases for tests and benches: created fresh, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

CONNECT_TIMEOUT_S = 10


def _admin_connection(admin_url: str):  # noqa: ANN202 - psycopg is imported lazily
    import psycopg

    return psycopg.connect(admin_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)


def create_database(admin_url: str, prefix: str = "studyd_test") -> str:
    """A new, empty database on the server of `admin_url` (a uniquely named `prefix_…`); its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin_connection(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin_url.rpartition('/')[0]}/{name}"


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of `url`, closing whatever connections are still open on it."""
    name = url.rpartition("/")[2]
    with _admin_connection(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def throwaway_database(admin_url: str, prefix: str = "studyd_test") -> Iterator[str]:
    """`create_database` for the block, dropped after it (even when it raised)."""
    url = create_database(admin_url, prefix)
    try:
        yield url
    finally:
        drop_database(admin_url, url)
