"""`studyd worker` as real OS processes, for the end-to-end and reliability tests: one worker
(`start_worker`), a database with its workers (`Cluster`), and `wait_for`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from serve_harness import REPO, clean_env

from storage import queue
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from studyd.daemon.service import submit_spec
from studyd.spec import load_spec

STUDYD = [sys.executable, "-m", "studyd.cli.main"]


def start_worker(
    database_url: str,
    log_path: Path,
    *,
    heartbeat: float = 0.5,
    grace: float = 3.0,
    reaper_period: float = 0.5,
    poll: float = 0.1,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """One `studyd worker --device cpu` process with short heartbeat/grace/reaper periods; its
    output goes to `log_path`. `extra` flags come last, so they win over these."""
    args = [*STUDYD, "worker", "--device", "cpu", "--database-url", database_url]
    args += ["--heartbeat", str(heartbeat), "--grace", str(grace)]
    args += ["--reaper-period", str(reaper_period), "--poll", str(poll), *(extra or [])]
    # One thread each: 8 workers share 2 cores in CI.
    full_env = clean_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1") | (env or {})
    with log_path.open("ab") as log:
        return subprocess.Popen(args, cwd=REPO, env=full_env, stdout=log, stderr=log)


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str = "", every: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(every)


class Cluster:
    """A database with the queue, and the worker processes started against it."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        ensure_schema(url)
        self.url = url
        self.tmp = tmp_path
        self.engine = make_engine(url)
        self.storage = make_optuna_storage(url)
        self.processes: list[subprocess.Popen] = []
        (tmp_path / "data").mkdir(exist_ok=True)

    def submit(self, spec_text: str, **kwargs) -> queue.StudyRecord:
        return submit_spec(self.engine, self.storage, load_spec(spec_text), **kwargs)

    def start_worker(self, *extra: str) -> subprocess.Popen:
        """A worker on this database; a loaded CI machine can starve a live worker for seconds,
        so the grace is generous except where a test passes its own (`--grace 8`)."""
        n = len(self.processes)
        env = {"STUDYD_DATA_DIR": str(self.tmp / "data"), "PYTHONUNBUFFERED": "1"}
        log = self.tmp / f"worker-{n}.log"
        process = start_worker(self.url, log, grace=10, poll=0.2, extra=list(extra), env=env)
        self.processes.append(process)
        return process

    def log(self, n: int) -> str:
        return (self.tmp / f"worker-{n}.log").read_text(errors="replace")[-4000:]

    def wait_exit(self, process: subprocess.Popen, timeout: float) -> int:
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            n = self.processes.index(process)
            raise AssertionError(
                f"worker {n} still running after {timeout}s:\n{self.log(n)}"
            ) from None

    def trials(self, record: queue.StudyRecord) -> list[optuna.trial.FrozenTrial]:
        study = optuna.load_study(study_name=record.optuna_name, storage=self.storage)
        return study.get_trials(deepcopy=False)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
        self.engine.dispose()


def worker_of(cluster: Cluster, pid: int) -> queue.WorkerRecord | None:
    return next((w for w in queue.list_workers(cluster.engine) if w.pid == pid), None)
