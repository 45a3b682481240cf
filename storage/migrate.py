"""Alembic migrations of our tables, run programmatically (no alembic.ini at run time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from storage.engine import is_postgresql, make_engine
from storage.trial_indexes import create_trial_indexes

# Our own version table: Optuna keeps its schema version in `alembic_version`.
VERSION_TABLE = "studyd_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant shared by every studyd process: serialises concurrent upgrades on PostgreSQL.
_PG_LOCK_KEY = 0x5354_5544_59


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the migration lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: advisory)."""
    with engine.begin() as connection:
        if is_postgresql(engine.url):
            # Two servers starting at once must not both CREATE TABLE.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        yield connection


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade our tables to `revision` (default: the newest)."""
    engine = make_engine(url)
    try:
        with _migration_connection(engine) as connection:
            command.upgrade(_config(connection), revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Downgrade our tables to `revision` (`base` drops them all); Optuna's are never touched."""
    engine = make_engine(url)
    try:
        with _migration_connection(engine) as connection:
            command.downgrade(_config(connection), revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None when our tables were never created."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision this code ships."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def ensure_schema(url: str) -> None:
    """Bring the database up to date on start: our tables at head, Optuna's tables created.

    Servers and workers all call this; the migration lock makes concurrent starts safe, and
    Optuna's own table creation runs under it too so two first starts cannot race on it.
    """
    from storage.optuna_storage import make_optuna_storage

    if url.startswith("grpc://"):
        return
    if current_revision(url) != head_revision():
        upgrade(url)
    engine = make_engine(url)
    try:
        if not is_postgresql(url):
            # SQLite: Optuna's create_all runs in one BEGIN IMMEDIATE transaction, already serial.
            make_optuna_storage(url).engine.dispose()
            with engine.begin() as connection:
                create_trial_indexes(connection)
            return
        with _migration_connection(engine) as connection:
            make_optuna_storage(url).engine.dispose()
            # Our indexes on Optuna's tables need those tables: made just now on a fresh database.
            create_trial_indexes(connection)
    finally:
        engine.dispose()
