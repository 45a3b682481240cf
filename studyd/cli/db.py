"""`studyd db`: migrate the database's studyd tables (Optuna's tables are Optuna's)."""

from __future__ import annotations

import typer

from studyd.settings import Settings

db_app = typer.Typer(help="Database schema: upgrade, downgrade, current revision.")

_URL_OPTION = typer.Option(
    None, "--database-url", help="database URL (default: STUDYD_DATABASE_URL / Settings)"
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `studyd` app."""
    app.add_typer(db_app, name="db")


def _url(database_url: str | None) -> str:
    return database_url or Settings().database_url


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {type(exc).__name__}: {str(exc).splitlines()[0]}", err=True)
    return typer.Exit(1)


@db_app.command("upgrade")
def upgrade(
    database_url: str = _URL_OPTION,
    revision: str = typer.Option("head", "--revision", help="target revision"),
) -> None:
    """Create or upgrade studyd's tables (and Optuna's), beside anything already there."""
    from storage import migrate

    url = _url(database_url)
    try:
        if revision == "head":
            migrate.ensure_schema(url)
        else:
            migrate.upgrade(url, revision)
        typer.echo(f"database at revision {migrate.current_revision(url)}")
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        raise _fail(exc) from exc


@db_app.command("downgrade")
def downgrade(
    revision: str = typer.Argument(..., help="target revision; `base` drops studyd's tables"),
    database_url: str = _URL_OPTION,
) -> None:
    """Downgrade studyd's tables to REVISION; Optuna's tables are never touched."""
    from storage import migrate

    url = _url(database_url)
    try:
        migrate.downgrade(url, revision)
        typer.echo(f"database at revision {migrate.current_revision(url)}")
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        raise _fail(exc) from exc


@db_app.command("current")
def current(database_url: str = _URL_OPTION) -> None:
    """Print the database's revision and the newest one this studyd ships."""
    from storage import migrate

    url = _url(database_url)
    try:
        typer.echo(f"current: {migrate.current_revision(url)}  head: {migrate.head_revision()}")
    except Exception as exc:  # noqa: BLE001 - one readable line, not a traceback
        raise _fail(exc) from exc
