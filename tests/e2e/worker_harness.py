"""Worker processes for the worker end-to-end tests: `studyd worker` as real OS processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna

from storage import queue
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from studyd.client.readiness import wait_until_ready
from studyd.daemon.service import submit_spec
from studyd.spec import load_spec

STUDYD = [sys.executable, "-m", "studyd.cli.main"]
# A loaded CI machine can starve a live worker for seconds: the grace is generous except where a
# test kills a worker and waits for the reaper.
FAST = ["--heartbeat", "0.5", "--grace", "10", "--poll", "0.2", "--reaper-period", "0.5"]


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
        n = len(self.processes)
        env = {**os.environ, "STUDYD_DATA_DIR": str(self.tmp / "data"), "PYTHONUNBUFFERED": "1"}
        env.pop("STUDYD_DATABASE_URL", None)
        log = (self.tmp / f"worker-{n}.log").open("wb")
        command = [*STUDYD, "worker", "--database-url", self.url, "--device", "cpu", *FAST, *extra]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
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


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    try:
        return wait_until_ready(condition, [], timeout=timeout, every=0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def worker_of(cluster: Cluster, pid: int) -> queue.WorkerRecord | None:
    return next((w for w in queue.list_workers(cluster.engine) if w.pid == pid), None)
