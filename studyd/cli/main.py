"""The `studyd` command: server commands (serve, worker, db, proxy, demo) and client commands."""

from __future__ import annotations

import typer

from studyd.cli import client, db, proxy, serve, worker

app = typer.Typer(
    name="studyd",
    help="studyd: automatic hyperparameter studies for dropout.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """studyd: automatic hyperparameter studies for dropout."""


@app.command()
def version() -> None:
    """Print the studyd version."""
    from studyd import __version__

    typer.echo(__version__)


for module in (db, worker, serve, proxy, client):
    module.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
