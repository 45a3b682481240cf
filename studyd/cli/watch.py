"""Following a study until it ends: a live bar on a terminal, a line per change elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from studyd.cli import render
from studyd.cli.output import fail, out, print_json
from studyd.client.rest import StudydClient

# Exit codes of `watch` (and `submit --watch`) for a study that ended badly.
EXIT_FAILED = 1
EXIT_CANCELLED = 9
# How long `watch` waits after `done` for the best trial's test score to be stored.
TEST_SCORE_WAIT_S = 30.0


def follow(api: StudydClient, study_id: int, *, as_json: bool, interval: float) -> None:
    """Poll the study until it ends; exit 0 when done, non-zero when failed or cancelled."""
    study = poll_and_show(api, study_id, as_json=as_json, interval=interval)
    exit_for_final_state(study, quiet=as_json)


def poll_and_show(
    api: StudydClient, study_id: int, *, as_json: bool, interval: float
) -> dict[str, Any]:
    """Show progress until the study ends (live bar on a terminal, lines otherwise)."""
    if as_json:
        study = _poll_until_end(api, study_id, interval, lambda s: None)
        print_json(study)
    elif out.is_terminal:
        study = _watch_live(api, study_id, interval)
    else:
        last: list[Any] = [None]

        def show(study: dict[str, Any]) -> None:
            # Logs and pipes get a line per change of progress, not per poll (the ETA ticks).
            best = render.best_of(study) or {}
            key = (study.get("state"), render.finished_of(study), render.running_of(study))
            key += (best.get("number"),)
            if key != last[0]:
                out.print(f"[{study.get('state')}] {render.progress_line(study)}", soft_wrap=True)
                last[0] = key

        study = _poll_until_end(api, study_id, interval, show)
    return study


def _poll_until_end(
    api: StudydClient, study_id: int, interval: float, show: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    while True:
        study = api.study(study_id)
        show(study)
        if study.get("state") in ("done", "failed", "cancelled"):
            return with_test_score(api, study, interval)
        time.sleep(interval)


def with_test_score(
    api: StudydClient, study: dict[str, Any], interval: float, wait_s: float = TEST_SCORE_WAIT_S
) -> dict[str, Any]:
    """A study turns `done` just before its best trial is scored on the test split: wait up to
    `wait_s` for the score (its retraining can take as long as the best trial did)."""
    deadline = time.monotonic() + wait_s
    while study.get("state") == "done" and study.get("test_score") is None:
        if time.monotonic() > deadline:
            break
        time.sleep(min(interval, 1.0))
        study = api.study(study["id"])
    return study


def _watch_live(api: StudydClient, study_id: int, interval: float) -> dict[str, Any]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("· {task.fields[running]} running · best {task.fields[best]}"),
        TextColumn("· ETA {task.fields[eta]}"),
        console=out,
    )
    task = progress.add_task("", total=None, running=0, best="—", eta="—")
    with Live(progress, console=out, refresh_per_second=8, transient=False):

        def show(study: dict[str, Any]) -> None:
            best = render.best_of(study)
            progress.update(
                task,
                description=f"study {study_id} ({study.get('state')})"
                + (f" {parts}" if (parts := render.target_parts(study)) else ""),
                total=study.get("target_trials") or None,
                completed=render.finished_of(study),
                running=render.running_of(study),
                best=f"{render.fmt_value(best.get('value'))} (#{best.get('number')})"
                if best
                else "—",
                eta=render.fmt_duration(render.eta_seconds(study)),
            )

        return _poll_until_end(api, study_id, interval, show)


def exit_for_final_state(study: dict[str, Any], *, quiet: bool) -> None:
    state = study.get("state")
    if state == "done":
        if not quiet:
            score = study.get("test_score")
            tail = f" · test score {render.fmt_value(score)}" if score is not None else ""
            out.print(
                f"study {study.get('id')} is done: {render.progress_line(study)}{tail}",
                soft_wrap=True,
            )
        return
    detail = f": {study['error']}" if study.get("error") else ""
    raise fail(
        f"study {study.get('id')} {state}{detail}",
        EXIT_CANCELLED if state == "cancelled" else EXIT_FAILED,
    )
