"""`studyd proxy`: Optuna's gRPC storage proxy in front of the database, for many workers."""

from __future__ import annotations

import typer

from studyd.settings import Settings

DEFAULT_PROXY_PORT = 13000


def serve_proxy(database_url: str, host: str, port: int) -> None:
    """Serve Optuna's storage over gRPC until the process is stopped."""
    from optuna.storages import get_storage, run_grpc_proxy_server

    from storage.migrate import ensure_schema
    from storage.optuna_storage import make_optuna_storage

    # Under the same migration lock as servers and workers: a proxy started beside them on a
    # fresh database must not race them creating Optuna's tables.
    ensure_schema(database_url)
    # get_storage wraps an RDBStorage in Optuna's in-process cache; Optuna's docs warn that a
    # bare RDBStorage behind the proxy re-reads every finished trial on each request.
    storage = get_storage(make_optuna_storage(database_url))
    run_grpc_proxy_server(storage, host=host, port=port)


def register(app: typer.Typer) -> None:
    """Add `studyd proxy` to the `studyd` app."""

    @app.command()
    def proxy(
        database_url: str | None = typer.Option(
            None,
            "--database-url",
            help="Database the proxy serves (default: STUDYD_DATABASE_URL).",
            show_default=False,
        ),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(DEFAULT_PROXY_PORT, "--port", help="Port to listen on."),
    ) -> None:
        """Run Optuna's gRPC storage proxy; workers use it with --storage grpc://HOST:PORT."""
        url = database_url or Settings().database_url
        if url.startswith("grpc://"):
            typer.echo("error: --database-url must be a database, not another proxy", err=True)
            raise typer.Exit(2)
        if url.startswith("sqlite"):
            # Allowed (tests, one box), but the proxy exists for many remote workers.
            typer.echo("warning: serving a SQLite file; use PostgreSQL on a cluster", err=True)
        typer.echo(f"studyd proxy: serving Optuna storage on grpc://{host}:{port}", err=True)
        serve_proxy(url, host, port)
