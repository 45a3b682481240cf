"""The worker's heartbeat as a context manager: a thread that heartbeats every row the worker
holds, notices a cancelled study and a reaped row, and runs the reaper every `reaper_period` s."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from storage import queue
from storage.queue import StudyNotFound, WorkerGone
from studyd.daemon.worker.state import WorkerState

logger = logging.getLogger(__name__)


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
    """Heartbeat every `heartbeat` s; reap every `reaper_period` s; stop if our row is gone."""
    opts = state.options
    last_ok = last_reap = time.monotonic()
    while not state.stop.wait(opts.heartbeat):
        try:
            for row in [state.worker_id, *state.leases]:
                queue.heartbeat(state.engine, row)
            last_ok = time.monotonic()
            _check_cancelled(state)
        except WorkerGone:
            logger.error("worker %s was reaped: stopping without telling", state.worker_id)
            state.gone.set()
            return
        except Exception:  # noqa: BLE001 - a database hiccup: retry until the grace runs out
            logger.exception("heartbeat failed")
            if time.monotonic() - last_ok > opts.grace:
                logger.error("heartbeats failed for %.0f s: stopping", opts.grace)
                state.gone.set()
                return
        if time.monotonic() - last_reap >= opts.reaper_period:
            last_reap = time.monotonic()
            reaper_tick()


def _check_cancelled(state: WorkerState) -> None:
    """Flag the study being trained when it was cancelled or deleted."""
    study_id = state.training_study
    if study_id is None:
        return
    try:
        study_state = queue.get_study(state.engine, study_id).state
    except StudyNotFound:
        study_state = "deleted"
    if study_state in ("cancelled", "deleted") and not state.cancelled.is_set():
        logger.info("study %s was %s: stopping its trials at the next epoch", study_id, study_state)
        state.cancelled.set()
