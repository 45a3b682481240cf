"""`studyd worker`: serve queued studies on one device until stopped (or the queue is empty)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import typer
from pydantic import ValidationError

from studyd.settings import Settings, settings_with

# A database the worker cannot open at start (a wrong URL, a refused login) is a usage error.
EXIT_BAD_DATABASE = 2
# Reaped, or lost the database: `studyd serve` restarts such a worker and never gives it up.
EXIT_LOST_DATABASE = 3


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `studyd` app."""
    app.command("worker")(worker)


def worker(
    database_url: str = typer.Option(
        None, "--database-url", help="database URL (default: STUDYD_DATABASE_URL / Settings)"
    ),
    storage: str = typer.Option(
        None,
        "--storage",
        help="Optuna storage, e.g. grpc://HOST:PORT of `studyd proxy` (default: the database URL)",
    ),
    device: str = typer.Option(
        None, "--device", help="cuda:N, cpu or auto (default: STUDYD_WORKER_DEVICE or auto)"
    ),
    max_trials: int = typer.Option(None, "--max-trials", min=1, help="stop after N trials"),
    once: bool = typer.Option(False, "--once", help="exit when no study is queued or running"),
    heartbeat: float = typer.Option(
        None, "--heartbeat", min=0.1, help="heartbeat period (s; STUDYD_HEARTBEAT_INTERVAL)"
    ),
    grace: float = typer.Option(
        None,
        "--grace",
        min=0.5,
        help="seconds before a silent worker is reaped (STUDYD_HEARTBEAT_GRACE)",
    ),
    poll: float = typer.Option(
        None, "--poll", min=0.05, help="seconds between claims when idle (STUDYD_WORKER_POLL)"
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        help="torch CPU threads (STUDYD_WORKER_THREADS; default: 1 on cpu, torch's on cuda)",
    ),
    reaper_period: float = typer.Option(
        None, "--reaper-period", min=0.1, help="seconds between reaper runs (STUDYD_REAPER_PERIOD)"
    ),
    batch_trials: str = typer.Option(
        None,
        "--batch-trials",
        help="train up to K trials of one study at once as stacked models (one per depth; "
        "widths padded): K, or auto (8 on a CPU, by free memory up to 32 on a GPU, cut by the "
        "padding's cost; 1 when the spec searches many depths; a study's stacks grow 1, 2, 4, "
        "… with its finished trials); STUDYD_WORKER_BATCH_TRIALS, default auto",
    ),
) -> None:
    """Claim trial slots, train, report every epoch, tell Optuna; SIGTERM stops within one epoch."""
    from models.devices import DeviceError, resolve_device

    settings = load_settings(
        database_url=database_url,
        worker_device=device,
        worker_threads=threads,
        worker_batch_trials=None if batch_trials is None else parse_batch_trials(batch_trials),
        worker_poll=poll,
        heartbeat_interval=heartbeat,
        heartbeat_grace=grace,
        reaper_period=reaper_period,
    )
    try:  # before Lightning's imports: a device that does not exist is refused in a second
        resolve_device(settings.worker_device)
    except DeviceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from storage.engine import make_engine
    from storage.migrate import ensure_schema
    from storage.optuna_storage import make_optuna_storage
    from studyd.cli.database_errors import one_line_database_errors
    from studyd.daemon.worker import Worker, WorkerOptions
    from studyd.daemon.worker.startup import until_the_database_answers

    url = settings.database_url
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("optuna").setLevel(logging.WARNING)
    options = WorkerOptions.from_settings(settings, max_trials=max_trials, once=once)

    def start() -> Worker:
        with one_line_database_errors(url, EXIT_BAD_DATABASE):
            ensure_schema(url)
            engine = make_engine(url)
        # The queue stays on the database; only Optuna's trial traffic may go through a proxy.
        with one_line_database_errors(storage or url, EXIT_BAD_DATABASE):
            return Worker(engine, make_optuna_storage(storage or url), options)

    if settings.worker_parent_pid is None:
        runner = start()
    else:
        # Embedded: serve opened this database already, so a storage error is an outage
        # (serve restarted us into it), not a wrong URL: wait for it rather than die at
        # once. Anything else (a schema newer than this studyd) is still one line.
        with one_line_database_errors(url, EXIT_BAD_DATABASE):
            runner = until_the_database_answers("starting", start_unwrapped(url, storage, options))
    runner.run()
    if runner.gone:
        typer.echo("error: this worker was reaped or lost the database; it stopped", err=True)
        raise typer.Exit(EXIT_LOST_DATABASE)


def start_unwrapped(url: str, storage: str | None, options: Any) -> Callable[[], Any]:
    """The worker's start with its database errors raised as they are (to be waited out)."""
    from storage.engine import make_engine
    from storage.migrate import ensure_schema
    from storage.optuna_storage import make_optuna_storage
    from studyd.daemon.worker import Worker

    def start() -> Any:
        ensure_schema(url)
        return Worker(make_engine(url), make_optuna_storage(storage or url), options)

    return start


def load_settings(**flags: object) -> Settings:
    """The environment's settings under the flags given; a bad STUDYD_ value is one line."""
    try:
        return settings_with(**flags)
    except ValidationError as exc:
        problems = "; ".join(f"STUDYD_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: invalid setting: {problems}", err=True)
        raise typer.Exit(2) from None


def parse_batch_trials(text: str) -> int | str:
    """`--batch-trials`: a number of trials (1 or more), or auto."""
    if text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise typer.BadParameter(f"{text!r} is not a number of trials (1 or more) or auto")
