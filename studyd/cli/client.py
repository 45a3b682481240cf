"""`studyd` client commands: submit, list, status, watch, trials, summary, cancel, report…

Each read command takes `--json` (the API's JSON, nothing else on stdout). Errors are one line on
stderr and a non-zero exit code (see `ClientError.exit_code`).
"""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.text import Text

from studyd.cli import render
from studyd.cli.client_options import ClientOptions, client_command
from studyd.cli.output import connect, emit, err, fail, out, print_json
from studyd.cli.watch import (
    EXIT_FAILED,
    exit_for_final_state,
    follow,
    poll_and_show,
    with_test_score,
)
from studyd.client.rest import ClientError, InvalidRequest, StudydClient

EXIT_USAGE = 2

# Ids are checked here (a bad id is a usage error, exit 2); the server's 422 would read as exit 7.
MAX_ID = 2**31 - 1
StudyId = Annotated[
    int, typer.Argument(help="The study's id (see `studyd list`).", min=1, max=MAX_ID)
]
# Option values are checked here, as usage errors (exit 2), before any request: the server would
# answer a 422, which the CLI reserves for an invalid spec (exit 7).
StudyStateName = Literal["queued", "running", "done", "failed", "cancelled"]
TrialStateName = Literal["running", "waiting", "complete", "pruned", "fail"]


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a YAML/JSON spec and check it locally with `StudySpec` when that is available."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read spec {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise fail(f"spec {path} is not valid YAML/JSON{line}", InvalidRequest.exit_code) from None
    if not isinstance(data, dict):
        raise fail(f"spec {path} must be a mapping of fields", InvalidRequest.exit_code)
    try:
        from studyd.spec import SpecError, load_spec
    except ImportError:  # the server validates anyway; the local check only saves a round trip
        return data
    try:
        load_spec(data)
    except SpecError as exc:
        raise fail(f"invalid spec {path}: {exc}", InvalidRequest.exit_code) from None
    return data


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `studyd` app."""

    @client_command(app)
    def submit(
        options: ClientOptions,
        spec: Annotated[Path, typer.Argument(help="Study spec (YAML or JSON).")],
        priority: Annotated[
            int | None,
            typer.Option(
                help="Higher runs first (default 0).", show_default=False, min=-1000, max=1000
            ),
        ] = None,
        watch: Annotated[
            bool, typer.Option("--watch", help="Follow the study until it ends.")
        ] = False,
        idempotency_key: Annotated[
            str | None, typer.Option(help="Resubmitting with the same key queues nothing new.")
        ] = None,
        interval: Annotated[
            float, typer.Option(help="Seconds between polls with --watch.", min=0.05)
        ] = 1.0,
    ) -> None:
        """Queue a study from a spec file and print its id."""
        data = load_spec_file(spec)
        with connect(options) as api:
            study = api.submit(data, priority=priority, idempotency_key=idempotency_key)
            if options.as_json and not watch:
                print_json(study)
            elif not options.as_json:
                out.print(str(study["id"]))
                err.print(
                    f"study {study['id']} ({study.get('name', '')}) {study.get('state', 'queued')}"
                    f" with {study.get('target_trials', '?')} trials — follow it with "
                    f"`studyd watch {study['id']}`"
                )
            if watch:
                follow(api, study["id"], as_json=options.as_json, interval=interval)

    @client_command(app, "list")
    def list_(
        options: ClientOptions,
        state: Annotated[
            StudyStateName | None,
            typer.Option(help="Only studies in this state.", case_sensitive=False),
        ] = None,
        limit: Annotated[
            int, typer.Option(help="At most this many, newest first.", min=1, max=500)
        ] = 50,
        offset: Annotated[int, typer.Option(help="Skip this many.", min=0)] = 0,
    ) -> None:
        """List studies, newest first."""
        with connect(options) as api:
            page = api.list_studies(state=state and state.lower(), limit=limit, offset=offset)
        emit(
            page,
            options.as_json,
            lambda p: render.studies_table(p.get("items", []), p.get("total")),
        )

    @client_command(app)
    def status(
        options: ClientOptions,
        study_id: StudyId,
    ) -> None:
        """Show a study's state, progress, best trial and error."""
        with connect(options) as api:
            study = api.study(study_id)
        emit(study, options.as_json, render.study_view)

    @client_command(app)
    def watch(
        options: ClientOptions,
        study_id: StudyId,
        interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.05)] = 1.0,
    ) -> None:
        """Follow a study live; exit 0 when done, 1 when failed, 9 when cancelled."""
        with connect(options) as api:
            follow(api, study_id, as_json=options.as_json, interval=interval)

    @client_command(app)
    def trials(
        options: ClientOptions,
        study_id: StudyId,
        sort: Annotated[
            Literal["value", "number"],
            typer.Option(help="`value` (best first) or `number`.", case_sensitive=False),
        ] = "value",
        state: Annotated[
            TrialStateName | None,
            typer.Option(help="Only trials in this state.", case_sensitive=False),
        ] = None,
        variant: Annotated[str | None, typer.Option(help="Only trials of this variant.")] = None,
        limit: Annotated[int, typer.Option(help="At most this many trials.", min=1)] = 20,
    ) -> None:
        """Show a study's trials as a table (best first by default)."""
        with connect(options) as api:
            page = api.trials(
                study_id, state=state and state.lower(), variant=variant, sort=sort, limit=limit
            )
        emit(
            page,
            options.as_json,
            lambda p: render.trials_table(p.get("items", []), p.get("total"), width=out.width),
        )

    @client_command(app)
    def trial(
        options: ClientOptions,
        study_id: StudyId,
        number: Annotated[
            int, typer.Argument(help="The trial's number (`studyd trials`).", min=0, max=MAX_ID)
        ],
    ) -> None:
        """Show one trial: what it trained, its measures, constraints and learning curve."""
        with connect(options) as api:
            data = api.trial(study_id, number)
        emit(data, options.as_json, render.trial_view)

    @client_command(app)
    def summary(
        options: ClientOptions,
        study_id: StudyId,
    ) -> None:
        """Which variant, placement and rate win, importances, best config and test score."""
        with connect(options) as api:
            data = api.summary(study_id)
        emit(data, options.as_json, render.summary_view)

    @client_command(app)
    def cancel(
        options: ClientOptions,
        study_id: StudyId,
    ) -> None:
        """Cancel a queued or running study: no new trial starts, and running trials stop within
        seconds (`studyd trials` shows them as fail (cancelled))."""
        with connect(options) as api:
            study = api.cancel(study_id)
        emit(study, options.as_json, lambda s: f"study {study_id} {s.get('state', 'cancelled')}")

    @client_command(app)
    def delete(
        options: ClientOptions,
        study_id: StudyId,
    ) -> None:
        """Delete a study and its trials (cancel a running study first)."""
        with connect(options) as api:
            api.delete(study_id)
        # The API answers 204 with no body: --json prints what happened, for scripts.
        emit(
            {"id": study_id, "deleted": True},
            options.as_json,
            lambda _: f"study {study_id} deleted",
        )

    @client_command(app)
    def report(
        options: ClientOptions,
        study_id: StudyId,
        out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the report to.")],
        compare_with: Annotated[
            list[int] | None,
            typer.Option(
                "--compare-with",
                help="Other studies (repeat it; 2 or more) to rank the variants across, with a "
                "critical-difference diagram.",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Write a static HTML + PNG report of a study (plots of its trials) to --out."""
        from studyd.client.report import write_report

        # The directory is made before any request: a path that cannot be is found at once.
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            with connect(options) as api:
                written = write_report(api, study_id, out_dir, compare_with=compare_with or ())
        except OSError as exc:
            message = f"cannot write the report to {out_dir}: {exc.strerror or exc}"
            raise fail(message, EXIT_USAGE) from None
        if options.as_json:
            print_json({"index": str(written.index), "files": [str(p) for p in written.files]})
        else:
            out.print(f"report written to {written.index}")

    @client_command(app, json=False)
    def export(
        options: ClientOptions,
        study_id: StudyId,
        out_file: Annotated[
            Path | None, typer.Option("--out", help="CSV file to write (default: stdout).")
        ] = None,
    ) -> None:
        """Every trial of a study as CSV: values, feasibility, params, measures, configs."""
        with connect(options) as api:
            text = api.export_csv(study_id)
        if out_file is None:
            sys.stdout.write(text)
            return
        try:
            out_file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot write {out_file}: {exc.strerror or exc}", EXIT_USAGE) from None
        rows = max(sum(1 for _ in csv.reader(io.StringIO(text))) - 1, 0)  # a cell may hold \n
        out.print(f"{rows} trials written to {out_file}")

    @client_command(app, token=False)
    def dashboard(
        options: ClientOptions,
        database_url: Annotated[
            str | None,
            typer.Option(
                "--database-url",
                envvar="STUDYD_DATABASE_URL",
                help="Run optuna-dashboard on this database (else print the server's /dashboard).",
                show_envvar=True,
            ),
        ] = None,
        host: Annotated[str, typer.Option(help="Where optuna-dashboard listens.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port of optuna-dashboard.")] = 8080,
    ) -> None:
        """Run optuna-dashboard on the database, or print the server's /dashboard URL."""
        if not database_url:
            link = f"{options.url.rstrip('/')}/dashboard/"
            if options.as_json:
                print_json({"url": link})
            else:
                out.print(f"optuna-dashboard is served by the API at {link}")
            return
        from studyd.cli.serve import run_dashboard  # the one command module that imports api

        run_dashboard(database_url, host, port)

    @app.command()
    def demo(
        directory: Annotated[
            Path, typer.Option("--dir", help="Where the demo's database, log and report go.")
        ] = Path("studyd-demo"),
        spec: Annotated[
            Path | None, typer.Option(help="Spec to run (default: the bundled shoot-out).")
        ] = None,
        workers: Annotated[int, typer.Option(help="Embedded worker processes.")] = 2,
        port: Annotated[int | None, typer.Option(help="API port (default: a free one).")] = None,
        keep_serving: Annotated[
            bool, typer.Option("--keep-serving", help="Leave the server running (Ctrl-C stops).")
        ] = False,
        as_json: Annotated[
            bool,
            typer.Option(
                "--json", help="Print the study, its summary and the report path as JSON."
            ),
        ] = False,
    ) -> None:
        """Start a server on SQLite, run the variant shoot-out (500 mnist1d examples), print
        the verdict."""
        run_demo(
            directory, spec, workers=workers, port=port, keep_serving=keep_serving, as_json=as_json
        )


# The demo's test score retrains the best configuration (the shoot-out's: 200 epochs): its
# summary waits for it this long rather than print without it (issue 26: it landed 31 s later).
DEMO_TEST_SCORE_WAIT_S = 600.0


def _wait_until_ended(api: StudydClient, study_id: int) -> dict[str, Any]:
    while (study := api.study(study_id)).get("state") not in ("done", "failed", "cancelled"):
        time.sleep(1.0)
    return study


def run_demo(
    directory: Path,
    spec: Path | None,
    *,
    workers: int,
    port: int | None,
    keep_serving: bool,
    as_json: bool = False,
) -> None:
    from studyd.client import demo
    from studyd.client.report import write_report

    began = time.monotonic()
    try:
        spec_path = spec or demo.bundled_spec()
        err.print(f"starting `studyd serve` with {workers} worker(s) on {directory}/studyd.db …")
        with (
            demo.running_server(
                directory, port=port, workers=workers, keep_serving=keep_serving
            ) as server,
            StudydClient(server.url) as api,
        ):
            study = demo.submit_bundled(api, spec_path)
            sid = study["id"]
            (err if as_json else out).print(
                f"submitted {spec_path.name} as study {sid} ({study.get('target_trials')} trials)"
            )
            if as_json:  # one JSON document on stdout, at the end
                final = _wait_until_ended(api, sid)
                final = with_test_score(api, final, 1.0, wait_s=DEMO_TEST_SCORE_WAIT_S)
                report = write_report(api, sid, directory / "report")
                print_json({"study": final, "summary": api.summary(sid), "report": report.index})
                if final.get("state") != "done":
                    exit_for_final_state(final, quiet=True)
                return
            final = poll_and_show(api, sid, as_json=False, interval=1.0)
            if final.get("state") == "done" and final.get("test_score") is None:
                # The summary is printed once: with the test score its report shows too.
                err.print("scoring the best configuration on the test split …")
                final = with_test_score(api, final, 1.0, wait_s=DEMO_TEST_SCORE_WAIT_S)
            out.print(render.summary_view(api.summary(sid)))
            report = write_report(api, sid, directory / "report")
            minutes = (time.monotonic() - began) / 60
            out.print(
                Text(
                    f"\ndemo finished in {minutes:.1f} minutes (study {final.get('state')})", "bold"
                )
            )
            out.print(f"report:    {report.index}", soft_wrap=True)
            if keep_serving:
                out.print(f"API:       {server.url}/docs", soft_wrap=True)
                out.print(
                    f"dashboard: {server.url}/dashboard/   (Ctrl-C stops the server)",
                    soft_wrap=True,
                )
            else:
                out.print(
                    f"dashboard: studyd dashboard --database-url {server.database_url}",
                    soft_wrap=True,
                )
            if final.get("state") != "done":
                exit_for_final_state(final, quiet=False)
    except demo.DemoError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except ClientError as exc:
        raise fail(exc.message, exc.exit_code) from None
