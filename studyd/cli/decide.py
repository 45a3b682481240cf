"""`studyd` commands for what a researcher decides next: workers, compare, extend.

Kept apart from `client.py` so each command reads in one sitting; the options are the same
`--url` / `--token` / `--json` every client command takes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from studyd.cli.client import EXIT_USAGE, StudyId
from studyd.cli.client_options import ClientOptions, client_command
from studyd.cli.output import connect, emit, err, fail, print_json
from studyd.cli.render import fmt_duration, parse_time
from studyd.cli.watch import follow
from studyd.client.summary_rows import fmt_value

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
    elif worker.get("restarts"):
        state = f"{state} ({worker['restarts']} restarts)"
    held = worker.get("trials") or []
    trial = worker.get("trial_number") if not held else ", ".join(f"#{n}" for n in held)
    cells = [
        _dash(worker.get("id")),
        Text(state, style=WORKER_STATE_STYLE.get(str(worker.get("state") or "alive"), "")),
        _dash(worker.get("host")),
        _dash(worker.get("device")),
        _dash(worker.get("pid")),
        _dash(worker.get("study_id")),
        _dash(None if trial is None else trial if isinstance(trial, str) else f"#{trial}"),
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


def comparison_view(comparison: dict[str, Any]) -> Group:
    """Studies × variants (mean and rank in each study), the average ranks, the answer."""
    order = comparison["variants"]
    table = Table(title="variants across studies: mean (rank)", title_justify="left")
    table.add_column("study")
    table.add_column("dataset")
    for name in order:
        table.add_column(name, justify="right")
    for study in comparison["studies"]:
        cells = []
        for name in order:
            score = study["scores"][name]
            mark = "" if score["replicated"] else "*"
            cells.append(f"{fmt_value(score['mean'])}{mark} ({score['rank']:g})")
        label = f"{study['study_id']} {study['name']}"
        table.add_row(*[Text(c) for c in (label, study["dataset"], *cells)])
    ranks = [f"{comparison['mean_ranks'][n]:.2f}" for n in order]
    table.add_row(*[Text(c, style="bold") for c in ("average rank", "", *ranks)])
    parts: list[Any] = [table]
    if comparison.get("unreplicated"):
        parts.append(Text("* no seed replicates: one search configuration's value"))
    parts.append(Text(comparison["answer"]))
    return Group(*parts)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `studyd` app."""

    @client_command(app)
    def workers(
        options: ClientOptions,
        alive_within: Annotated[
            float | None,
            typer.Option(
                help="Seconds since the last heartbeat (default: the server's grace period).",
                min=0.001,
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Show the live workers: host, device, the study and trial each runs, its heartbeat."""
        with connect(options) as api:
            rows = api.workers(alive_within=alive_within)
        emit(rows, options.as_json, workers_table)

    @client_command(app)
    def compare(
        options: ClientOptions,
        study_ids: Annotated[
            list[int], typer.Argument(help="Three or more study ids (see `studyd list`).")
        ],
        plot: Annotated[
            Path | None,
            typer.Option(help="Write the critical-difference diagram here (PNG, SVG or PDF)."),
        ] = None,
        alpha: Annotated[float, typer.Option(help="The tests' level.", min=0.001, max=0.2)] = 0.05,
    ) -> None:
        """Which variant works across studies: ranks, Friedman and Nemenyi tests (Demšar 2006)."""
        with connect(options) as api:
            comparison = api.compare(study_ids, alpha=alpha)
        if plot is not None:
            from studyd.client.cd_diagram import write_cd_diagram

            try:
                write_cd_diagram(comparison, plot)
            except (OSError, ValueError) as exc:
                raise fail(f"cannot write {plot}: {exc}", EXIT_USAGE) from None
        if options.as_json:
            print_json(comparison)
            return
        emit(comparison, False, comparison_view)
        if plot is not None:
            typer.echo(f"critical-difference diagram written to {plot}")

    @client_command(app)
    def extend(
        options: ClientOptions,
        study_id: StudyId,
        trials: Annotated[
            int, typer.Option("--trials", help="How many more distinct runs.", min=1, max=10_000)
        ],
        watch: Annotated[
            bool, typer.Option("--watch", help="Follow the study until it ends.")
        ] = False,
        interval: Annotated[
            float, typer.Option(help="Seconds between polls with --watch.", min=0.05)
        ] = 1.0,
    ) -> None:
        """Give a done or cancelled study N more runs; the sampler continues from its trials and
        the verdict, summary and test score are recomputed when it is done again."""
        with connect(options) as api:
            study = api.extend(study_id, trials)
            if options.as_json and not watch:
                print_json(study)
            elif not options.as_json:
                err.print(
                    f"study {study_id} {study.get('state')} again with "
                    f"{study.get('target_trials')} trials ({trials} more) — follow it with "
                    f"`studyd watch {study_id}`"
                )
            if watch:
                follow(api, study_id, as_json=options.as_json, interval=interval)

    @client_command(app, json=False)
    def model(
        options: ClientOptions,
        study_id: StudyId,
        out_file: Annotated[Path, typer.Option("--out", help="Where to write the model file.")],
    ) -> None:
        """Download a done study's trained best model: weights + the configs that rebuild it
        (load it with `models.saved.load_saved`)."""
        with connect(options) as api:
            data = api.model_file(study_id)
        try:
            out_file.write_bytes(data)
        except OSError as exc:
            raise fail(f"cannot write {out_file}: {exc.strerror or exc}", EXIT_USAGE) from None
        typer.echo(f"model of study {study_id} written to {out_file} ({len(data)} bytes)")
