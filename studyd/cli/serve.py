"""`studyd serve`: the API plus N embedded workers over one database (SQLite file by default)."""

from __future__ import annotations

import logging
import signal
import sys
from contextlib import suppress
from typing import Annotated

import typer

# How long embedded workers get to finish or fail their trial after SIGTERM.
WORKER_STOP_SECONDS = 30.0


def _note_signal(signum: int, _frame: object) -> None:
    typer.echo(f"studyd serve: {signal.Signals(signum).name}, stopping", err=True)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Embedded worker processes.")] = 1,
    no_workers: Annotated[bool, typer.Option("--no-workers", help="API only.")] = False,
    database_url: Annotated[
        str | None, typer.Option(help="Database URL (default STUDYD_DATABASE_URL or ./studyd.db).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    worker_device: Annotated[
        str | None,
        typer.Option(help="Embedded workers' device: cuda:N, cpu or auto (STUDYD_WORKER_DEVICE)."),
    ] = None,
    worker_threads: Annotated[
        int | None,
        typer.Option(min=1, help="Embedded workers' torch CPU threads (STUDYD_WORKER_THREADS)."),
    ] = None,
    worker_batch_trials: Annotated[
        str | None,
        typer.Option(
            help="Embedded workers' trials per stack: K or auto (STUDYD_WORKER_BATCH_TRIALS)."
        ),
    ] = None,
) -> None:
    """Run the REST API and N embedded workers; brings the database schema up to date first."""
    import uvicorn

    from api.app import create_app
    from storage.migrate import ensure_schema
    from studyd.cli.database_errors import one_line_database_errors
    from studyd.cli.worker import load_settings, parse_batch_trials
    from studyd.daemon.embedded import EmbeddedWorkers

    settings = load_settings(
        database_url=database_url,
        host=host,
        port=port,
        worker_device=worker_device,
        worker_threads=worker_threads,
        worker_batch_trials=(
            None if worker_batch_trials is None else parse_batch_trials(worker_batch_trials)
        ),
    )
    with one_line_database_errors(settings.database_url, 2):
        ensure_schema(settings.database_url)
    app = create_app(settings)
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default
    # SIGTERM disposition that would kill this process before the workers are stopped.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _note_signal)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    embedded = EmbeddedWorkers(0 if no_workers else workers, settings)
    app.state.embedded_workers = embedded  # /workers reports the ones that are down
    embedded.start()
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            timeout_graceful_shutdown=5,
        )
    finally:
        embedded.stop(WORKER_STOP_SECONDS)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `studyd` app."""
    app.command()(serve)


def run_dashboard(database_url: str, host: str, port: int) -> None:
    """optuna-dashboard on the database, behind the same guard as the API's mount."""
    from wsgiref.simple_server import make_server

    from api.dashboard import guarded_dashboard
    from storage.engine import make_engine
    from storage.optuna_storage import make_optuna_storage
    from studyd.cli.database_errors import one_line_database_errors

    # The same guarded app the API mounts at /dashboard (optuna-dashboard's run_server would
    # serve it bare); wsgiref is the server run_server itself uses.
    with one_line_database_errors(database_url, 2):
        app = guarded_dashboard(make_optuna_storage(database_url), make_engine(database_url))
    with make_server(host, port, app) as server:  # type: ignore[arg-type]
        typer.echo(f"optuna-dashboard on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
        with suppress(KeyboardInterrupt):  # Ctrl-C is how it is stopped, not an error
            server.serve_forever()
