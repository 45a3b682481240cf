"""One readable line, password hidden, for a database URL a command cannot use.

`studyd worker`, `serve` and `dashboard` open the database first; a wrong URL (unreachable host,
refused login, missing driver, a path that cannot be opened, text that is no URL) printed a
55-150-line traceback, or the URL with its password.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import alembic.util
import psycopg
import sqlalchemy.exc

from studyd.cli.output import fail

# `scheme://user:password@` in any text, parseable as a URL or not.
_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
# SQLAlchemy wraps the driver's error as "(psycopg.OperationalError) …": the reader needs the "…".
_WRAPPED = re.compile(r"^\([\w.]+\)\s*")
DATABASE_ERRORS = (
    sqlalchemy.exc.SQLAlchemyError,
    psycopg.Error,
    sqlite3.Error,
    ImportError,  # a URL whose driver is not installed (mysql://)
    OSError,
    alembic.util.CommandError,  # a database migrated by a newer studyd
    RuntimeError,  # Optuna's "the table schema is no longer compatible"
)
URL_FORMS = "write sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def redacted(text: str, url: str = "") -> str:
    """`text` with the password of every URL in it, and `url`'s password, replaced by `***`."""
    text = _USERINFO.sub(r"\1***@", text)
    try:
        password = sqlalchemy.engine.make_url(url).password if url else None
    except sqlalchemy.exc.ArgumentError:
        password = None
    # A password of a letter or two would blank letters of words, and never shows as such.
    return text.replace(str(password), "***") if password and len(str(password)) > 3 else text


def database_problem(url: str, exc: BaseException) -> str:
    """`cannot use the database at URL: why` on one line, the password hidden."""
    if isinstance(exc, sqlalchemy.exc.ArgumentError):
        return f"cannot use the database at {redacted(url)}: not a database URL; {URL_FORMS}"
    lines = str(exc).strip().splitlines()
    reason = redacted(_WRAPPED.sub("", lines[0]) if lines else type(exc).__name__, url)
    if isinstance(exc, ImportError):
        reason = f"its driver is not installed ({reason}); {URL_FORMS}"
    return f"cannot use the database at {redacted(url)}: {reason}"


@contextmanager
def one_line_database_errors(url: str, exit_code: int) -> Iterator[None]:
    """Database errors inside become `error: cannot use the database …` and `exit_code`."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise fail(database_problem(url, exc), exit_code) from None
