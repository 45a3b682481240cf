"""The queue's transactions: one session per call, the database's clock, a locked study row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from storage.engine import read_only
from storage.queue.records import StudyNotFound
from storage.schema import Study


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def reading(engine: Engine) -> AbstractContextManager[Session]:
    """A transaction that only reads (SQLite: deferred BEGIN, beside the writer under WAL)."""
    return transaction(read_only(engine))


def utcnow(session: Session) -> datetime:
    """Naive UTC "now"; on PostgreSQL the server's clock, so workers on skewed hosts agree."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(text("SELECT timezone('UTC', clock_timestamp())"))
    return datetime.now(UTC).replace(tzinfo=None)


def locked_study(session: Session, study_id: int) -> Study:
    row = session.get(Study, study_id, with_for_update=True)
    if row is None:
        raise StudyNotFound(f"study {study_id} does not exist")
    return row
