"""`studyd` commands for what a researcher decides next: workers, compare, extend.

Kept apart from `client.py` so each command reads in one sitting; the options are the same
`--url` / `--token` / `--json` every client command takes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from studyd.cli.client import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt
from studyd.cli.output import connect, emit
from studyd.cli.render import fmt_duration, parse_time

WORKER_STATE_STYLE = {"alive": "green", "restarting": "yellow", "failed": "red"}


def workers_table(workers: list[dict[str, Any]], now: datetime | None = None) -> Table:
    """One row per worker: where it runs, what it holds, how long since its heartbeat."""
    now = now or datetime.now(UTC)
    table = Table(title=f"workers ({len(workers)})", title_justify="left")
    for name, justify in [
        ("id", "right"),
        ("state", "left"),
        ("host", "left"),
        ("device", "left"),
        ("pid", "right"),
        ("study", "right"),
        ("trial", "right"),
        ("heartbeat", "right"),
        ("up", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for worker in workers:
        table.add_row(*_worker_cells(worker, now))
    return table


def _ago(value: Any, now: datetime) -> str:
    when = parse_time(value)
    return "—" if when is None else fmt_duration(max(0.0, (now - when).total_seconds()))


def _worker_cells(worker: dict[str, Any], now: datetime) -> list[Text]:
    state = str(worker.get("state") or "alive")
    if state != "alive" and worker.get("restarts"):
        state = f"{state} ({worker['restarts']} restarts, exit {worker.get('last_exit_code')})"
    trial = worker.get("trial_number")
    cells = [
        _dash(worker.get("id")),
        Text(state, style=WORKER_STATE_STYLE.get(str(worker.get("state") or "alive"), "")),
        _dash(worker.get("host")),
        _dash(worker.get("device")),
        _dash(worker.get("pid")),
        _dash(worker.get("study_id")),
        _dash(None if trial is None else f"#{trial}"),
        Text(
            _ago(worker.get("last_heartbeat"), now) + " ago"
            if worker.get("last_heartbeat")
            else "—"
        ),
        Text(_ago(worker.get("started_at"), now)),
    ]
    return [c if isinstance(c, Text) else Text(str(c)) for c in cells]


def _dash(value: Any) -> Text:
    return Text("—" if value in (None, "") else str(value))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `studyd` app."""

    @app.command()
    def workers(
        alive_within: Annotated[
            float | None,
            typer.Option(
                help="Seconds since the last heartbeat (default: the server's grace period).",
                min=0.001,
                show_default=False,
            ),
        ] = None,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Show the live workers: host, device, the study and trial each runs, its heartbeat."""
        with connect(url, token) as api:
            rows = api.workers(alive_within=alive_within)
        emit(rows, as_json, workers_table)
