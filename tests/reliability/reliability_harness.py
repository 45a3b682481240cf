"""Real processes for fault tests: a `studyd serve` server, `studyd worker`s, a private PostgreSQL.

Figures (time to recover, trials lost, duplicates, requests tried, 5xx seen) are written as one
JSON line per test to `tests/reliability/.figures/<module>.jsonl` (ignored by git), so they
survive `pytest` without `-s` and the issue note can quote them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve_harness import (  # noqa: F401 - the reliability tests import them from here
    REPO,
    Api,
    Server,
    clean_env,
    free_port,
    in_process_api,
    start_server,
    stop_process,
)
from spec_harness import trainable_spec  # noqa: F401 - the tests import it from here
from worker_harness import start_worker, wait_for  # noqa: F401 - the tests import them from here

from storage.throwaway_database import create_database

FIGURES = Path(__file__).resolve().parent / ".figures"
REQUIRE_SERVICES = os.environ.get("STUDYD_TEST_REQUIRE_SERVICES") == "1"


def write_figure(test: str, **values: Any) -> dict[str, Any]:
    """Append `{test, **values}` to `.figures/<module>.jsonl`; returns the record."""
    FIGURES.mkdir(exist_ok=True)
    module = test.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    record = {"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **values}
    with (FIGURES / f"{module}.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
    return record


# --- studyd serve with embedded workers ------------------------------------------------------

# Embedded workers' settings for the tests: one CPU thread, one trial per slot, short periods.
WORKER_ENV = {
    "STUDYD_WORKER_DEVICE": "cpu",
    "STUDYD_WORKER_THREADS": "1",
    "STUDYD_WORKER_BATCH_TRIALS": "1",
    "STUDYD_HEARTBEAT_INTERVAL": "0.5",
    "STUDYD_HEARTBEAT_GRACE": "30",  # a loaded CI machine starves heartbeats
    "STUDYD_REAPER_PERIOD": "0.5",
    "STUDYD_WORKER_POLL": "0.1",
}


def serve_with_workers(url: str, log_dir: Path, workers: int = 2, **env: str) -> Server:
    """`studyd serve --workers N` with WORKER_ENV (and `env` on top), waited on until /healthz."""
    command = [sys.executable, "-m", "studyd.cli.main", "serve", "--log-level", "warning"]
    command += ["--workers", str(workers)]
    return start_server(url, log_dir, command=command, env=WORKER_ENV | env)


def embedded_pids(server: Server) -> set[int]:
    """The pids of the workers /workers lists as alive."""
    return {w["pid"] for w in server.client.get("/workers").json() if w["state"] == "alive"}


# --- a private PostgreSQL cluster --------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def private_postgres_unavailable() -> str | None:
    """Why a private cluster cannot be started here (None when it can)."""
    if _pg_bin("initdb") is None or _pg_bin("pg_ctl") is None:
        return "initdb/pg_ctl are not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser (PostgreSQL refuses to run as root)"
    return None


@dataclass
class PrivatePostgres:
    """A throw-away PostgreSQL server on a free loopback port that a test may stop and start.

    Other engineers' tests use the shared server; stopping that one would break them, so fault
    tests run their own. As root, the server runs as the `postgres` user via runuser.
    """

    root: Path
    port: int
    log_path: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://studyd@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *args], check=check, capture_output=True, text=True, timeout=120
        )

    @classmethod
    def create(cls) -> PrivatePostgres:
        root = Path(tempfile.mkdtemp(prefix="studyd-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        root.chmod(0o755)
        pg = cls(root=root, port=free_port(), log_path=root / "server.log")
        initdb = _pg_bin("initdb")
        # trust on loopback only: the cluster lives for one test module and listens on 127.0.0.1.
        pg._run(initdb, "-D", str(pg.data), "-U", "studyd", "--auth=trust", "-E", "UTF8")
        pg.start()
        return pg

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self) -> str:
        # Never dropped: the whole server goes with `destroy`.
        return create_database(self.url(), prefix="studyd_rel")

    def destroy(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
