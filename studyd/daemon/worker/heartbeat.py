"""The worker's heartbeat as a context manager: a thread that heartbeats every row the worker
holds, notices a cancelled study, a reaped row and a parent `studyd serve` that is gone, and runs
the reaper every `reaper_period` s."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from storage.worker_store import StudyNotFound, WorkerGone
from studyd.daemon.worker.state import DB_ERRORS, OutageLog, StudyIdentity, WorkerState

logger = logging.getLogger(__name__)

# Seconds between looks at the trained study's state and at the parent process: a cancel takes
# effect within this plus one batch (training checks `state.cancelled` between batches).
WATCH_PERIOD = 1.0


@contextmanager
def heartbeating(state: WorkerState, reaper_tick: Callable[[], None]) -> Iterator[None]:
    """Heartbeat while the block runs; on leaving it, set `state.stop` and wait for the thread."""
    beat = threading.Thread(
        target=_beat, args=(state, reaper_tick), name="studyd-heartbeat", daemon=True
    )
    beat.start()
    try:
        yield
    finally:
        state.stop.set()
        beat.join(timeout=state.options.heartbeat + 5)


def _beat(state: WorkerState, reaper_tick: Callable[[], None]) -> None:
    """Heartbeat every `heartbeat` s; watch every WATCH_PERIOD s; reap every `reaper_period` s;
    stop if our row or our parent is gone. A database that does not answer is waited for, past
    the grace too: the worker holds on to its trial and carries on when it answers."""
    opts = state.options
    outage = OutageLog(f"worker {state.worker_id} heartbeat")
    last_ok = last_beat = last_reap = time.monotonic()
    while not state.stop.wait(min(opts.heartbeat, WATCH_PERIOD)):
        if parent_gone(opts.parent_pid):
            logger.warning(
                "worker %s: its studyd serve (pid %s) is gone: stopping",
                state.worker_id,
                opts.parent_pid,
            )
            state.stop_reason = "its studyd serve is gone"
            state.stop.set()
            return
        try:
            if time.monotonic() - last_beat >= opts.heartbeat:
                for row in [state.worker_id, *state.leases]:
                    state.store.heartbeat(row)
                if time.monotonic() - last_ok > opts.grace:
                    # Silent past the grace (a locked SQLite file blocks rather than fails):
                    # the others were cut off as long; give them a grace before reaping them.
                    state.reap_after = time.monotonic() + opts.grace
                last_ok = last_beat = time.monotonic()
            _check_cancelled(state)
            if state.db_down.is_set():
                _back(state, outage)
        except WorkerGone:
            logger.error("worker %s was reaped: stopping without telling", state.worker_id)
            state.gone.set()
            return
        except DB_ERRORS as exc:  # an outage: wait for the database, however long
            outage.failed(exc)
            _down(state, time.monotonic() - last_ok)
            continue
        except Exception:  # noqa: BLE001 - not the database: say so, keep the heartbeat alive
            logger.exception("worker %s: heartbeat failed", state.worker_id)
        if time.monotonic() - last_reap >= opts.reaper_period and _may_reap(state):
            last_reap = time.monotonic()
            reaper_tick()


def _down(state: WorkerState, silent: float) -> None:
    """One more line once the outage outlasts the grace: the other workers may reap us then."""
    if not state.db_down.is_set():
        state.db_down.set()
        state.lost_line = False
    if silent > state.options.grace and not state.lost_line:
        state.lost_line = True
        logger.warning(
            "worker %s: no heartbeat for %.0f s (past the %.0f s grace): waiting for the "
            "database; the trial in hand goes on",
            state.worker_id,
            silent,
            state.options.grace,
        )


def _back(state: WorkerState, outage: OutageLog) -> None:
    """The database answers again: no reaping for a grace, while the other workers, cut off
    too, heartbeat again (their rows are as stale as ours was)."""
    outage.answered()
    state.db_down.clear()
    state.reap_after = time.monotonic() + state.options.grace


def _may_reap(state: WorkerState) -> bool:
    return not state.db_down.is_set() and time.monotonic() >= state.reap_after


def parent_gone(parent_pid: int | None) -> bool:
    """True when this process was started by `parent_pid` and is now someone else's child (the
    parent died: Linux and macOS hand orphans to init or a subreaper)."""
    return parent_pid is not None and os.getppid() != parent_pid


def _check_cancelled(state: WorkerState) -> None:
    """Flag the study being trained when it was cancelled or deleted (its id maybe taken by a
    new study since)."""
    training = state.training_study
    if training is None:
        return
    study_id = training.id
    try:
        now = state.store.get_study(study_id)
    except StudyNotFound:
        study_state = "deleted"
    else:
        study_state = now.state if StudyIdentity.of(now) == training else "deleted"
    if study_state in ("cancelled", "deleted") and not state.cancelled.is_set():
        logger.info("study %s was %s: stopping its trials now", study_id, study_state)
        state.cancelled.set()
