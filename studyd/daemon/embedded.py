"""The workers `studyd serve` embeds: started as `studyd worker` processes, restarted when one
dies (with backoff), given up on when one keeps dying, and stopped with the server.

Each worker is told its parent's pid (`STUDYD_WORKER_PARENT_PID`): if serve is killed outright
(`kill -9`), its workers notice within a heartbeat and stop cleanly instead of serving on as
orphans.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from studyd.settings import Settings

logger = logging.getLogger(__name__)

# A worker that lived less than this died "at once" (its start alone, importing torch, took over
# a minute on a loaded 2-core machine); after MAX_QUICK_DEATHS such deaths in a row it is given up
# on (reported in /workers and the log) rather than restarted in a loop.
QUICK_DEATH_SECONDS = 300.0
MAX_QUICK_DEATHS = 3
# `studyd worker`'s exit code when it lost its database (or its row, reaped meanwhile): the
# database's fault, not the worker's, so it never counts towards MAX_QUICK_DEATHS; the restart
# waits for the database at start.
EXIT_LOST_DATABASE = 3
# Seconds before restart n (from 0): FIRST_BACKOFF × 2ⁿ, at most MAX_BACKOFF.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
# Seconds between looks at the processes.
WATCH_PERIOD = 0.5


@dataclass
class EmbeddedWorker:
    """One worker slot of the server: its process now, and how often it has died."""

    slot: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    quick_deaths: int = 0
    last_exit: int | None = None
    restart_at: float | None = None
    given_up: bool = False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def report(self) -> dict[str, Any]:
        """What /workers shows of a worker that is not running now."""
        state = "failed" if self.given_up else "restarting"
        return {"state": state, "restarts": self.restarts, "last_exit_code": self.last_exit}


@dataclass
class EmbeddedWorkers:
    """Start, supervise and stop `count` embedded workers."""

    count: int
    settings: Settings
    workers: list[EmbeddedWorker] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.workers = [EmbeddedWorker(slot) for slot in range(self.count)]
        for worker in self.workers:
            self._spawn(worker)
        if self.workers:
            self._watcher = threading.Thread(
                target=self._watch, name="studyd-embedded-workers", daemon=True
            )
            self._watcher.start()

    def _spawn(self, worker: EmbeddedWorker) -> None:
        env = {
            **os.environ,
            "STUDYD_DATABASE_URL": self.settings.database_url,
            **self.settings.worker_env(),
            "STUDYD_WORKER_PARENT_PID": str(os.getpid()),
        }
        command = [sys.executable, "-m", "studyd.cli.main", "worker"]
        worker.process = subprocess.Popen(command, env=env)
        worker.started = time.monotonic()
        worker.restart_at = None

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_PERIOD):
            with self._lock:
                if self._stopping.is_set():
                    return
                for worker in self.workers:
                    self._tend(worker)

    def _tend(self, worker: EmbeddedWorker) -> None:
        """Notice a death, schedule the restart, restart when due, or give up."""
        now = time.monotonic()
        if worker.given_up or worker.process is None:
            if worker.restart_at is not None and now >= worker.restart_at:
                worker.restarts += 1
                self._spawn(worker)
                logger.warning("embedded worker %s restarted (pid %s)", worker.slot, worker.pid)
            return
        code = worker.process.poll()
        if code is None:
            return
        worker.last_exit, worker.process = code, None
        lived = now - worker.started
        if code == EXIT_LOST_DATABASE:
            self._restart_later(worker, code, lived, FIRST_BACKOFF)
            return
        worker.quick_deaths = worker.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 1
        if worker.quick_deaths >= MAX_QUICK_DEATHS:
            worker.given_up = True
            logger.error(
                "embedded worker %s died %s times in a row (exit %s): not restarted; see its "
                "log above and GET /workers",
                worker.slot,
                worker.quick_deaths,
                code,
            )
            return
        delay = min(FIRST_BACKOFF * 2 ** (worker.quick_deaths - 1), MAX_BACKOFF)
        self._restart_later(worker, code, lived, delay)

    @staticmethod
    def _restart_later(worker: EmbeddedWorker, code: int, lived: float, delay: float) -> None:
        worker.restart_at = time.monotonic() + delay
        logger.warning(
            "embedded worker %s (exit %s) died after %.0f s: restarting in %.1f s",
            worker.slot,
            code,
            lived,
            delay,
        )

    def restarts_by_pid(self) -> dict[int, int]:
        """How often each running embedded worker was restarted, by its process id."""
        with self._lock:
            return {w.pid: w.restarts for w in self.workers if w.pid is not None}

    def not_running(self) -> list[dict[str, Any]]:
        """The embedded workers that are down now (restarting or given up), for /workers."""
        with self._lock:
            return [w.report() for w in self.workers if w.process is None]

    def stop(self, timeout: float) -> None:
        """SIGTERM each worker, wait for all, SIGKILL whoever is still there after `timeout`."""
        with self._lock:
            self._stopping.set()
        running = [w.process for w in self.workers if w.process is not None]
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("worker pid %s ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
