"""Helpers for the API tests: a real server process, specs, and trials written the worker's way."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import optuna
import psycopg

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running server process and a client for it."""

    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    token: str | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    database_url: str,
    log_dir: Path,
    *,
    token: str | None = None,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> Server:
    """`studyd serve --no-workers` on a free port (or `command`), waited on until /healthz."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STUDYD_")}
    full_env |= {"STUDYD_DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}
    if token:
        full_env["STUDYD_API_TOKEN"] = token
    full_env |= env or {}
    args = command or [
        sys.executable,
        "-m",
        "studyd.cli.main",
        "serve",
        "--no-workers",
        "--log-level",
        "warning",
    ]
    args = [*args, "--port", str(port)]
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=REPO, env=full_env, stdout=log, stderr=log)
    server = Server(f"http://127.0.0.1:{port}", database_url, process, log_path, token)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not start in {STARTUP_SECONDS}s:\n{server.log()}")


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for a module (tests/conftest.py's `db_url` is per test)."""
    name = f"studyd_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spec(name: str | None = None, **search: Any) -> dict[str, Any]:
    """A small valid spec (nothing trains: these servers run no workers)."""
    return {
        "name": name or f"api-{uuid.uuid4().hex[:8]}",
        "dataset": "digits",
        "dropout": {"variants": ["standard", "gaussian"], "placements": ["hidden"]},
        "training": {"epochs": 2},
        "search": {"n_trials": 12, **search},
    }


def submit(server: Server, **kwargs: Any) -> dict[str, Any]:
    response = server.client.post("/studies", json=spec(**kwargs))
    assert response.status_code == 201, response.text
    return response.json()


def add_trials(
    server: Server, optuna_name: str, n: int, *, pruned_every: int = 0, failed: int = 0
) -> list[float]:
    """Finish `n` trials on the study the way a worker records them; returns their values."""
    study = optuna.load_study(study_name=optuna_name, storage=_optuna_url(server.database_url))
    values = []
    for i in range(n):
        trial = study.ask()
        variant = trial.suggest_categorical("variant", ["standard", "gaussian"])
        rate = trial.suggest_float("rate", 0.1, 0.7)
        width = trial.suggest_int("width", 16, 256, log=True)
        value = round(0.5 + rate / 2 + (0.05 if variant == "gaussian" else 0) + width / 1e4, 6)
        curve = [
            {
                "epoch": e,
                "train_loss": 1.0 / (e + 1),
                "train_acc": value,
                "val_loss": 0.5,
                "val_acc": value * (e + 1) / 3,
                "seconds": 0.1,
            }
            for e in range(3)
        ]
        attrs = {
            "variant": variant,
            "placement": "hidden" if i % 3 else "input+hidden",
            "config": {"hidden": [width], "variant": variant, "rates": [rate]},
            "train": {"epochs": 3, "lr": 0.001},
            "curve": curve,
            "val_acc": value,
            "gap": 0.01,
        }
        for key, v in attrs.items():
            trial.set_user_attr(key, v)
        for point in curve:
            trial.report(point["val_acc"], point["epoch"])
        if pruned_every and i % pruned_every == pruned_every - 1:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif i < failed:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
            values.append(value)
    return values


def _optuna_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)
