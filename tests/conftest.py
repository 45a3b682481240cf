"""Shared fixtures: database URLs over every backend (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.throwaway_database import throwaway_database

PG_ADMIN_URL = os.environ.get("STUDYD_TEST_POSTGRES_URL", "")
REQUIRE_SERVICES = os.environ.get("STUDYD_TEST_REQUIRE_SERVICES") == "1"
# Markers that keep a test out of the fast layer and allow it to start Python processes.
MAY_START_PROCESSES = ("process", "slow", "browser")
VENV_BIN = Path(sys.executable).parent


def _starts_python(args: object) -> bool:
    """Whether Popen `args` run Python: this interpreter, a python*, or a venv script (studyd,
    uvicorn, schemathesis, ...)."""
    first = args[0] if isinstance(args, list | tuple) else str(args).split(" ")[0]
    program = Path(str(first))
    return program.name.startswith("python") or program.parent == VENV_BIN


@pytest.fixture(autouse=True)
def _a_test_that_starts_python_is_marked(request, monkeypatch) -> None:
    """The fast layer stays fast: an unmarked test that starts a Python process (seconds of
    imports each) fails, naming the marker it needs."""
    if any(request.node.get_closest_marker(name) for name in MAY_START_PROCESSES):
        return
    start = subprocess.Popen.__init__

    def refuse_python(self, args, *rest, **kwargs):
        if _starts_python(args):
            pytest.fail(
                f"{request.node.nodeid} starts {args!r}: mark it @pytest.mark.process "
                "(or slow), or test in process", pytrace=False,
            )  # fmt: skip
        start(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse_python)


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


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _database(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{directory / 'studyd.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin_url")
        with throwaway_database(admin) as url:
            yield url


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    yield from _database(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request, tmp_path_factory) -> Iterator[str]:
    """One database on each backend for a module's tests (a server they share: each process
    start costs seconds of imports)."""
    yield from _database(request, tmp_path_factory.mktemp("module-db"))
