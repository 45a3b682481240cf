"""Fixtures of the studyd room: a migrated database, its engine and its Optuna storage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from optuna.storages import BaseStorage
from sqlalchemy.engine import Engine

from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage

Backend = tuple[Engine, BaseStorage]


def _migrated(url: str) -> Iterator[Backend]:
    ensure_schema(url)
    engine = make_engine(url)
    yield engine, make_optuna_storage(url)
    engine.dispose()


@pytest.fixture
def backend(db_url) -> Iterator[Backend]:
    """(engine, Optuna storage) on a fresh migrated database of every backend (see `db_url`)."""
    yield from _migrated(db_url)


@pytest.fixture
def sqlite_backend(sqlite_url) -> Iterator[Backend]:
    """The same on SQLite only: for in-process worker runs whose training, not SQL, is tested."""
    yield from _migrated(sqlite_url)
