"""What every route needs: settings, the engine, Optuna's storage (lazily built), read caches."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from optuna.storages import BaseStorage
from sqlalchemy.engine import Connection, Engine

from storage.engine import make_engine, read_only
from storage.optuna_storage import make_optuna_storage
from studyd.heap import return_free_pages
from studyd.settings import Settings

T = TypeVar("T")
# Best trials (small, one per study and completion) and summaries (a few KiB to a few hundred
# KiB each): bounded so that the API's memory does not grow with the number of studies read.
BEST_TRIAL_CACHE_SIZE = 256
SUMMARY_CACHE_SIZE = 16
# Pages of finished trials (≈ 190 KiB each at 100 trials a page, so ≈ 12 MiB at most): enough
# for every page of a 6 400-trial study, or the first pages of many studies a dashboard polls.
TRIAL_PAGE_CACHE_SIZE = 64


class LruCache:
    """A bounded, thread-safe map: the least recently used entry goes first."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key]

    def __setitem__(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class AppContext:
    """Per-app state, held on `app.state.context` (no module-level globals)."""

    settings: Settings
    engine: Engine
    _optuna_storage: BaseStorage | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Keyed by `StudyTrialStats.complete_key`, which changes whenever a trial completes.
    best_trials: LruCache = field(default_factory=lambda: LruCache(BEST_TRIAL_CACHE_SIZE))
    summaries: LruCache = field(default_factory=lambda: LruCache(SUMMARY_CACHE_SIZE))
    # Their JSON, under the summary's key and the study's fields that change apart from it.
    summary_json: LruCache = field(default_factory=lambda: LruCache(SUMMARY_CACHE_SIZE))
    # Keyed by the page's trial rows, all finished (`storage.trials.TrialPage.finished_key`):
    # the rows, and (≈ 50 KiB each) the JSON of the page built from them.
    trial_pages: LruCache = field(default_factory=lambda: LruCache(TRIAL_PAGE_CACHE_SIZE))
    trial_page_json: LruCache = field(default_factory=lambda: LruCache(TRIAL_PAGE_CACHE_SIZE))
    # One summary computed at a time: two cold 10 000-trial summaries at once would double the
    # peak memory, and the second would find the first's result in the cache anyway.
    summary_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> AppContext:
        return cls(settings=settings, engine=make_engine(settings.database_url))

    def optuna_storage(self) -> BaseStorage:
        """Optuna's storage on the same database, built lazily: the API starts with it down."""
        with self._lock:
            if self._optuna_storage is None:
                self._optuna_storage = make_optuna_storage(self.settings.database_url)
            return self._optuna_storage

    def read_connection(self) -> Connection:
        """One read-only connection for all of a request's reads (see `read_connection`)."""
        return read_only(self.engine).connect()

    def close(self) -> None:
        self.engine.dispose()
        storage = self._optuna_storage
        if storage is not None and hasattr(storage, "engine"):
            storage.engine.dispose()


def settle_heap() -> None:
    """After start and after bulk work (a cold summary): collect, then move every surviving
    object out of the collector's reach (gc.freeze) and hand free heap pages back to the OS.

    The modules a summary imports (Optuna's importance, scikit-learn, SciPy) leave ~1M long-lived
    objects; each full collection walked them all, 130-500 ms of one request's latency under load.
    Frozen objects are still freed by reference counting, only cycles among them are kept. A cold
    summary of a 10 000-trial study holds its trials for a few seconds; freed, that memory stayed
    in the route thread's malloc arena (glibc's malloc_trim returns it; elsewhere a no-op).
    """
    gc.collect()
    gc.freeze()
    return_free_pages()


# What the first summary imports: SciPy (the verdict's statistics) and scikit-learn (fANOVA,
# through optuna.importance). Cold, that is 1 s of one request on an idle 2-core machine and over
# 10 s on a loaded one, so the server imports them in the background as it starts.
SUMMARY_MODULES = ("studyd.analysis.evidence", "optuna.importance")


def warm_summary_modules() -> threading.Thread:
    """Import SUMMARY_MODULES on a daemon thread, then settle the heap; the thread is returned.

    Requests are served meanwhile; a summary that comes first waits on Python's import lock for
    the rest of the import, never longer than it would have taken alone.
    """

    def warm() -> None:
        # Static imports (SUMMARY_MODULES, by name): no import of a computed name in the API.
        import optuna.importance  # noqa: F401

        import studyd.analysis.evidence  # noqa: F401

        settle_heap()

    thread = threading.Thread(target=warm, name="studyd-warm-summary", daemon=True)
    thread.start()
    return thread


async def in_thread(work: Callable[[], T]) -> T:
    """`work()` in the route thread pool, from an `async def` route.

    A sync route costs FastAPI two thread hops (the route, then the validation of its return
    value), each a wake-up and a GIL hand-over; an async route that hands its database work to
    the pool takes one, and its response is validated and serialised on the event loop.
    """
    return await run_in_threadpool(work)


async def context(request: Request) -> AppContext:
    """FastAPI dependency: the app's context (async: a sync dependency costs a thread hop)."""
    return request.app.state.context
