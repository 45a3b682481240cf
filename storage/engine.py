"""The one place SQLAlchemy engines are built, for our tables and for Optuna's RDBStorage alike."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import plugins
from sqlalchemy.engine import URL, CreateEnginePlugin, make_url

# How long a SQLite writer waits for the lock before "database is locked" (seconds); tests of a
# locked database set STUDYD_SQLITE_BUSY_TIMEOUT lower, so a lock is an outage they can afford.
SQLITE_BUSY_TIMEOUT_S = float(os.environ.get("STUDYD_SQLITE_BUSY_TIMEOUT", "60"))
SQLITE_PLUGIN = "studyd_sqlite_immediate"
# Connections kept open per SQLite engine (as many again may open under a burst).
SQLITE_POOL_SIZE = 40
# Execution option of connections that only read: SQLite opens their transactions with a
# deferred BEGIN, so under WAL they read beside the writer instead of queueing for its lock.
READ_ONLY = "studyd_read_only"
# Which connections of this thread hold a SQLite file's write lock. Module-level on purpose: the
# lock belongs to the file, shared by every engine on it (ours and Optuna's) in this process.
_write_locks = threading.local()


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy needs: `postgresql://` runs on psycopg 3, not psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(url: str | URL) -> bool:
    return make_url(str(url) if isinstance(url, URL) else url).get_backend_name() == "sqlite"


def is_postgresql(url: str | URL) -> bool:
    name = make_url(sqlalchemy_url(str(url))).get_backend_name()
    return name == "postgresql"


def engine_options(url: str) -> dict[str, Any]:
    """`create_engine` keyword arguments for `url`; Optuna's RDBStorage gets the same ones.

    SQLite's options travel as a named engine plugin rather than as events on one engine, because
    RDBStorage builds its own engine from `engine_kwargs` (and again after unpickling).
    """
    if is_sqlite(url):
        return {
            "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S},
            "plugins": [SQLITE_PLUGIN],
            # The API serves sync routes from ~40 threads: with QueuePool's default 5 (+10
            # overflow) they queued for connections and every overflow one was reopened (and
            # its PRAGMAs rerun) per request. SQLite connections are cheap file handles.
            "pool_size": SQLITE_POOL_SIZE,
            "max_overflow": SQLITE_POOL_SIZE,
        }
    if is_postgresql(url):
        # Idle connections get dropped by servers and proxies: test each one before use.
        return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 10}
    return {"pool_pre_ping": True}


def make_engine(url: str) -> Engine:
    """An engine for `url`: SQLite in WAL with immediate write transactions, or psycopg 3."""
    return create_engine(sqlalchemy_url(url), **engine_options(url))


def read_only(engine: Engine) -> Engine:
    """`engine` (same pool) for transactions that never write: on SQLite a deferred BEGIN.

    A write in such a transaction would fail at once with "database is locked" under
    contention (the trap `BEGIN IMMEDIATE` avoids), so only pure reads may use it.
    """
    return engine.execution_options(**{READ_ONLY: True})


@contextmanager
def read_connection(bind: Engine | Connection) -> Iterator[Connection]:
    """A connection for reads only: `bind` itself when it is one (opened `read_only`: a request
    that reads several things shares one connection and transaction, where on PostgreSQL each
    checkout was a ping, a BEGIN and a ROLLBACK, three round trips), else a new `read_only` one."""
    if isinstance(bind, Connection):
        yield bind
        return
    with read_only(bind).connect() as conn:
        yield conn


class SQLiteImmediatePlugin(CreateEnginePlugin):
    """WAL, a busy timeout and `BEGIN IMMEDIATE` for every transaction on a pysqlite engine.

    pysqlite's own deferred BEGIN takes the write lock only at the first write, so two readers that
    both decide to write deadlock and one gets "database is locked" at once, ignoring the busy
    timeout. Taking the lock at BEGIN makes writers queue on the timeout instead. This is
    SQLAlchemy's documented recipe ("Serializable isolation / Savepoints / Transactional DDL").
    """

    def update_url(self, url: URL) -> URL:
        return url

    def engine_created(self, engine: Engine) -> None:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        event.listen(engine, "commit", _sqlite_on_end)
        event.listen(engine, "rollback", _sqlite_on_end)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy: pysqlite must not emit its own BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _set_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode = WAL`, retried while another connection holds the file.

    Switching a new database's rollback journal to WAL takes an exclusive lock, and SQLite can
    answer "database is locked" at once there rather than wait on the busy timeout: processes
    starting together on a fresh file (servers, workers) failed at their first connection. Once
    one of them has switched, the mode is the file's and the pragma takes no such lock.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _held_locks() -> dict[str, set[int]]:
    if not hasattr(_write_locks, "held"):
        _write_locks.held = {}
    return _write_locks.held


def _sqlite_on_begin(connection: Any) -> None:
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
        return
    database = connection.engine.url.database or ""
    holders = _held_locks().setdefault(database, set())
    if holders:
        # This thread already holds the file's write lock on another connection (Optuna's first
        # start does: `_init_alembic` reads through a second session inside an open connection).
        # A second BEGIN IMMEDIATE would wait on itself for the whole busy timeout; a deferred
        # BEGIN reads fine beside it under WAL.
        connection.exec_driver_sql("BEGIN")
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE")
    holders.add(id(connection))


def _sqlite_on_end(connection: Any) -> None:
    database = connection.engine.url.database or ""
    _held_locks().get(database, set()).discard(id(connection))


plugins.register(SQLITE_PLUGIN, __name__, SQLiteImmediatePlugin.__name__)
