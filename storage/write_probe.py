"""Whether the database takes writes: a committed no-op write, and on SQLite the disk's room.

A database that answers reads can still refuse every write (a full disk, a read-only file or
mount, a PostgreSQL standby or `default_transaction_read_only`): readiness has to write to know.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from storage.migrate import VERSION_TABLE

# Below this much free space on the SQLite file's disk, writes are about to fail: SQLite needs a
# few pages of WAL per transaction, and the WAL reuses its space, so a small write can still pass
# where a larger one (a submitted study) gets "database or disk is full".
MIN_FREE_BYTES = 1024 * 1024


class DatabaseNotWritable(RuntimeError):
    """The database answers but cannot take writes; the message says why, on one line."""


def check_writable(engine: Engine, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """`DatabaseNotWritable` unless a write commits and (SQLite) its disk has room."""
    try:
        with engine.begin() as conn:
            # Rewrites the one row it reads: a real write (a WAL record, a row version), no change.
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = version_num"))
    except sa.exc.DBAPIError as exc:
        if not write_refused(exc.orig):
            raise  # down or unreachable: the API's 503 for a database that does not answer
        raise DatabaseNotWritable(f"the database cannot take writes: {_first_line(exc)}") from exc
    path = sqlite_file(engine)
    if path is not None:
        free = shutil.disk_usage(path.parent).free
        if free < min_free_bytes:
            raise DatabaseNotWritable(
                f"the disk holding {path} has {free} bytes free, under {min_free_bytes}: "
                "writes are about to fail"
            )


def sqlite_file(engine: Engine) -> Path | None:
    """The SQLite database file of `engine`, or None (PostgreSQL, an in-memory database)."""
    name = engine.url.database
    if (
        engine.dialect.name != "sqlite"
        or not name
        or name == ":memory:"
        or name.startswith("file:")
    ):
        return None
    return Path(name).expanduser().resolve()


# SQLite's codes and PostgreSQL's SQLSTATEs for a write refused by a database that answers.
SQLITE_REFUSALS = ("SQLITE_READONLY", "SQLITE_FULL", "SQLITE_IOERR")
POSTGRES_REFUSALS = ("25006", "53")  # read_only_sql_transaction; class 53: disk full, no memory


def write_refused(error: BaseException | None) -> bool:
    """Whether a driver error says "this database takes no writes", not "it is unreachable"."""
    sqlite_name = getattr(error, "sqlite_errorname", None) or ""
    if sqlite_name.startswith(SQLITE_REFUSALS):
        return True
    sqlstate = getattr(error, "sqlstate", None) or ""
    return sqlstate.startswith(POSTGRES_REFUSALS)


def _first_line(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip()
    return text.splitlines()[0] if text else type(exc.orig).__name__
