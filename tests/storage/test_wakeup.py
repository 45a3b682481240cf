"""Idle workers' wake-up: a waiter returns soon after a slot opens, else waits it out."""

from __future__ import annotations

import os
import threading
import time

import pytest

from storage import queue
from storage.engine import make_engine
from storage.migrate import ensure_schema

# Far above what a wake-up takes, so only a missed one makes a wait this long.
LONG_WAIT_S = 5.0
WOKEN_WITHIN_S = 1.0


def _after(delay: float, action) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _submit(engine) -> None:
    queue.submit_study(engine, name="w", spec={}, target_trials=1)
    queue.wake_workers(engine)


def _timed_wait(waiter: queue.SlotWaiter, timeout: float) -> tuple[bool, float]:
    start = time.monotonic()
    woken = waiter.wait(timeout, threading.Event())
    return woken, time.monotonic() - start


def test_waiter_wakes_when_a_study_is_submitted_and_when_a_slot_is_released(engine):
    waiter = queue.SlotWaiter(engine)
    try:
        assert _timed_wait(waiter, 0.3)[0] is False  # nothing queued: the whole timeout
        # As `submit_spec` does: the row, then (its Optuna study made) the wake-up.
        submit = _after(0.2, lambda: _submit(engine))
        woken, took = _timed_wait(waiter, LONG_WAIT_S)
        submit.join()
        assert woken and took < WOKEN_WITHIN_S, took

        worker = queue.register_worker(engine, host="h", device="cpu", pid=os.getpid())
        record = queue.claim_trial_slot(engine, worker)
        assert record is not None
        assert _timed_wait(waiter, 0.3)[0] is False  # its one slot is taken
        release = _after(0.2, lambda: queue.release_trial_slot(engine, record.id, worker))
        woken, took = _timed_wait(waiter, LONG_WAIT_S)
        release.join()
        assert woken and took < WOKEN_WITHIN_S, took
    finally:
        waiter.close()


def test_waiter_returns_promptly_when_stopped(engine):
    waiter = queue.SlotWaiter(engine)
    stop = threading.Event()
    try:
        _after(0.2, stop.set)
        start = time.monotonic()
        assert waiter.wait(LONG_WAIT_S, stop) is False
        assert time.monotonic() - start < WOKEN_WITHIN_S
    finally:
        waiter.close()


@pytest.mark.postgres
def test_a_dropped_listen_connection_is_one_log_line_and_the_waiter_polls_on(postgres_url, caplog):
    # A PostgreSQL restart drops the LISTEN connection: one warning line, no traceback, and the
    # waiter keeps waiting by polling.
    ensure_schema(postgres_url)
    engine = make_engine(postgres_url)
    waiter = queue.SlotWaiter(engine)
    try:
        assert _timed_wait(waiter, 0.2)[0] is False  # the LISTEN connection is open now
        pid = waiter._listener.info.backend_pid
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        caplog.clear()
        with caplog.at_level("WARNING", logger="storage.queue.wakeup"):
            woken, _ = _timed_wait(waiter, 0.3)
        assert woken is False
        lines = [r for r in caplog.records if "listening for new slots failed" in r.getMessage()]
        assert len(lines) == 1
        assert lines[0].exc_info is None and "\n" not in lines[0].getMessage()
    finally:
        waiter.close()
        engine.dispose()
