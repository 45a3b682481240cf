"""Storage fixtures: a migrated database and its engine on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    ensure_schema(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def optuna_storage(db_url, engine):
    storage = make_optuna_storage(db_url)
    yield storage
    storage.engine.dispose()
