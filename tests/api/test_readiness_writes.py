"""Issue 27 item 7: `/readyz` reports a database that answers but cannot take writes.

With the SQLite disk full, `/readyz` answered 200 "ready" while every `POST /studies` got 503
"database or disk is full". Readiness now commits a no-op write and, on SQLite, checks the
disk's free space: a read-only database (a `mode=ro` SQLite file, PostgreSQL with
`default_transaction_read_only`) or a full disk is a 503 naming why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from serve_harness import in_process_api
from sqlalchemy.engine import make_url

from api.app import create_app
from storage import migrate, write_probe
from studyd.settings import Settings

SPEC = {"name": "ready", "training": {"epochs": 1}, "search": {"n_trials": 1}}


@contextmanager
def read_only_app(db_url: str) -> Iterator[TestClient]:
    """The API over a database made first, then opened so that it takes no writes."""
    migrate.ensure_schema(db_url)
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        app_url = f"sqlite:///file:{url.database}?mode=ro&uri=true"
    else:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = on')
        app_url = db_url
    with TestClient(create_app(Settings(database_url=app_url))) as client:
        yield client


def test_a_database_that_takes_writes_is_ready(db_url):
    with in_process_api(db_url) as api:
        client = api.client
        response = client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ready", "database": "ok"}
        assert client.post("/studies", json=SPEC).status_code == 201


def test_a_read_only_database_is_not_ready(db_url):
    with read_only_app(db_url) as client:
        assert client.get("/studies").status_code == 200  # it answers reads
        ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["detail"].startswith("the database cannot take writes: "), ready.text
        assert "read" in ready.json()["detail"].lower()  # readonly / read-only transaction
        assert ready.headers["retry-after"]
        # And what readiness predicts: a submit is refused the same way, never a 500.
        assert client.post("/studies", json=SPEC).status_code == 503


def test_a_full_disk_under_sqlite_is_not_ready(sqlite_url, monkeypatch):
    path = Path(make_url(sqlite_url).database)
    real = shutil.disk_usage

    def full(where):  # the OS's answer for a full disk; other paths as they are
        usage = real(where)
        return usage._replace(free=0) if Path(where) == path.parent else usage

    with in_process_api(sqlite_url) as api:
        client = api.client
        assert client.get("/readyz").status_code == 200
        monkeypatch.setattr(write_probe.shutil, "disk_usage", full)
        ready = client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json()["detail"] == (
        f"the disk holding {path.resolve()} has 0 bytes free, under "
        f"{write_probe.MIN_FREE_BYTES}: writes are about to fail"
    )


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        ("SQLITE_READONLY", True),
        ("SQLITE_FULL", True),
        ("SQLITE_IOERR_WRITE", True),
        ("SQLITE_BUSY", False),
        ("SQLITE_CANTOPEN", False),
    ],
)
def test_which_sqlite_errors_mean_no_writes(error, refused):
    import sqlite3

    exc = sqlite3.OperationalError("x")
    exc.sqlite_errorname = error
    assert write_probe.write_refused(exc) is refused
