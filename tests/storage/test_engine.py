"""Engine options: SQLite WAL + immediate transactions (ours and Optuna's), psycopg 3 URLs."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from storage.engine import make_engine, sqlalchemy_url
from storage.optuna_storage import make_optuna_storage


def test_postgresql_urls_use_psycopg_3():
    assert sqlalchemy_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert sqlalchemy_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("build", ["ours", "optuna"])
def test_sqlite_engines_use_wal_busy_timeout_and_take_the_write_lock_at_begin(sqlite_url, build):
    engine = make_engine(sqlite_url) if build == "ours" else make_optuna_storage(sqlite_url).engine
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 10_000
    holding = threading.Event()
    release = threading.Event()

    def hold_a_read_transaction():
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))  # a read only: a deferred BEGIN would take no lock
            holding.set()
            release.wait(5)

    other = threading.Thread(target=hold_a_read_transaction)
    other.start()
    holding.wait(5)
    probe = make_engine(sqlite_url)
    raw = probe.raw_connection()
    try:
        raw.execute("PRAGMA busy_timeout = 0")
        with pytest.raises(Exception, match="locked"):
            raw.execute("BEGIN IMMEDIATE")
    finally:
        release.set()
        other.join()
        raw.close()
        probe.dispose()
        engine.dispose()


def test_postgresql_engine_pings_pooled_connections(postgres_url):
    engine = make_engine(postgres_url)
    assert engine.pool._pre_ping
    assert engine.dialect.driver == "psycopg"
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    engine.dispose()


def test_a_first_connection_waits_for_a_writer_holding_a_fresh_rollback_journal_file(tmp_path):
    # Another process writes the new file in SQLite's default rollback mode (RESERVED lock):
    # switching to WAL then answers "database is locked" at once, not after the busy timeout.
    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.5, other.execute, ("COMMIT",)).start()
    engine = make_engine(f"sqlite:///{path}")
    started = time.monotonic()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    assert time.monotonic() - started >= 0.4  # it waited for the writer, then switched
    engine.dispose()
    other.close()
