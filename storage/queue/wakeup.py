"""Waking idle workers when a slot opens: PostgreSQL LISTEN/NOTIFY, a cheap read poll on SQLite.

An idle worker used to sleep its whole poll period between claims, so a newly submitted study
waited up to that long (1 s by default) for its first trial. Whoever opens slots (a submit, a
released slot, a target extended for replicates) calls `announce_slots` in its transaction;
PostgreSQL delivers the notification at commit. SQLite has no such channel, so the waiter reads
"is any slot open?" every `SQLITE_CHECK_S` instead: a read under WAL, beside the writer, unlike
a claim, which takes the write lock.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from storage.queue.sessions import reading, transaction
from storage.schema import ACTIVE_STATES, Study

logger = logging.getLogger(__name__)

CHANNEL = "studyd_slots"
# Seconds between "is a slot open?" reads on SQLite: well under the 0.5 s start latency promised.
SQLITE_CHECK_S = 0.1
# Longest single wait for a notification, so a stop request is seen promptly.
STOP_CHECK_S = 0.25


def announce_slots(session: Session) -> None:
    """Tell idle workers a slot may have opened (PostgreSQL: delivered when `session` commits)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def wake_workers(engine: Engine) -> None:
    """`announce_slots` in a transaction of its own (e.g. once a submitted study is ready)."""
    with transaction(engine) as session:
        announce_slots(session)


def slot_open(engine: Engine) -> bool:
    """True when some queued or running study has an unclaimed slot."""
    query = (
        select(Study.id)
        .where(Study.state.in_(ACTIVE_STATES), Study.claimed < Study.target_trials)
        .limit(1)
    )
    with reading(engine) as session:
        return session.scalar(query) is not None


class SlotWaiter:
    """An idle worker's wait between claims: returns early once a slot may be open."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._listener: psycopg.Connection | None = None

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Wait at most `timeout` s (less once `stop` is set); True when woken by an open slot."""
        if self.engine.dialect.name == "postgresql":
            try:
                return self._wait_notified(timeout, stop)
            except psycopg.Error as exc:
                # The storage is down or the connection was dropped (a PostgreSQL restart): poll
                # until it is back. One line: the traceback says nothing the error does not.
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                logger.warning("listening for new slots failed (%s): polling instead", first)
                self.close()
        return self._wait_polling(timeout, stop)

    def close(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None

    def _wait_polling(self, timeout: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or stop.wait(min(SQLITE_CHECK_S, left)):
                return False
            try:
                if slot_open(self.engine):
                    return True
            except SQLAlchemyError:
                return False  # the claim loop reports and backs off from storage errors

    def _wait_notified(self, timeout: float, stop: threading.Event) -> bool:
        if self._listener is None:
            self._listener = self._listen()
            # A slot opened before LISTEN took effect sent its notification to no one.
            try:
                if slot_open(self.engine):
                    return True
            except SQLAlchemyError:
                return False
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            got = list(self._listener.notifies(timeout=min(STOP_CHECK_S, left), stop_after=1))
            if got:
                # Later ones say nothing more: drop them so that the next wait really waits.
                # (Not inside the loop above: its generator holds the connection's lock.)
                list(self._listener.notifies(timeout=0))
                return True
        return False

    def _listen(self) -> psycopg.Connection:
        url = self.engine.url.set(drivername="postgresql")
        conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn
