"""A worker that starts while its database is down waits for it, with backoff, instead of
dying: `studyd serve` restarts a dead worker, and a restart that crashes at once on the same
outage was counted as a quick death until serve gave the worker up for good."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from storage.worker_store import STORAGE_ERRORS

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds between tries: 1, 2, 4, ... up to this (a database back is found within it).
MAX_WAIT = 5.0


def until_the_database_answers(
    what: str, call: Callable[[], T], on_back: Callable[[], None] | None = None
) -> T:
    """`call()`, retried with backoff while the database does not answer: one line when it does
    not, one when it does (and `on_back()`), never a traceback per try."""
    since: float | None = None
    wait = 1.0
    while True:
        try:
            result = call()
        except STORAGE_ERRORS as exc:
            if since is None:
                since = time.monotonic()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                logger.warning("%s: the database is unreachable (%s); waiting", what, first)
            time.sleep(wait)
            wait = min(wait * 2, MAX_WAIT)
            continue
        if since is not None:
            down = time.monotonic() - since
            logger.info("%s: the database answers after %.0f s", what, down)
            if on_back is not None:
                on_back()
        return result
