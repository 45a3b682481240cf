"""Issue 27 item 5: dashboard notes follow one rule at both entry points: allowed and checked.

On `studyd dashboard --database-url …` a note for study 99999 (or a trial of it) answered 500,
and a note for trial 99999 of study 1 answered 204 and was stored. Both entry points (the API's
mount and `studyd dashboard`) now serve one guarded app: a note needs a study, and a trial of
that study, that exist (404), and a `{"version": int, "body": str}` body (400); nothing else is
stored. `PUT /dashboard/api/…` (the dashboard's API is at `/api/`) says where notes go.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import optuna
import pytest
from serve_harness import in_process_api

from api.dashboard import guarded_dashboard
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage

TOKEN = "notes-token"
SPEC = {"name": "notes", "training": {"epochs": 1}, "search": {"n_trials": 4}}


@contextmanager
def through_api_mount(db_url: str) -> Iterator[httpx.Client]:
    with in_process_api(db_url, api_token=TOKEN) as api:
        yield api.client


@contextmanager
def through_dashboard_command(db_url: str) -> Iterator[httpx.Client]:
    """The app `studyd dashboard --database-url` serves, over WSGI in this process."""
    ensure_schema(db_url)  # as `studyd serve` would have
    app = guarded_dashboard(make_optuna_storage(db_url), make_engine(db_url))
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://dash") as client:
        yield client


ENTRY_POINTS = {"api-mount": through_api_mount, "dashboard-command": through_dashboard_command}


def make_studies(db_url: str) -> tuple[optuna.Study, optuna.Study]:
    """Two Optuna studies with two trials each (what workers would have written)."""
    storage = make_optuna_storage(db_url)
    out = []
    for name in ("notes-a", "notes-b"):
        study = optuna.create_study(study_name=name, storage=storage)
        for x in (0.1, 0.2):
            study.enqueue_trial({"x": x})
            study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        out.append(study)
    return out[0], out[1]


def notes_of(study: optuna.Study) -> dict:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {k: v for k, v in attrs.items() if "note" in k}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_notes_are_written_for_what_exists_and_refused_otherwise(db_url, entry):
    with ENTRY_POINTS[entry](db_url) as client:
        a, b = make_studies(db_url)
        sid, own, foreign = a._study_id, a.trials[0]._trial_id, b.trials[0]._trial_id
        note = {"version": 1, "body": "looked at it"}

        assert client.put(f"/api/studies/{sid}/note", json=note).status_code == 204
        assert client.put(f"/api/studies/{sid}/{own}/note", json=note).status_code == 204
        stored = notes_of(a)
        assert stored and "looked at it" in str(stored)

        refused = {
            "unknown study": ("/api/studies/99999/note", note, 404, "no study has id 99999"),
            "trial of unknown study": (f"/api/studies/99999/{own}/note", note, 404, "99999"),
            "unknown trial": (f"/api/studies/{sid}/99999/note", note, 404, "no trial with id"),
            "another study's trial": (f"/api/studies/{sid}/{foreign}/note", note, 404, "no trial"),
            "no version": (f"/api/studies/{sid}/note", {"body": "x"}, 400, '"version"'),
            "text version": (f"/api/studies/{sid}/note", {"version": "2", "body": "x"}, 400, ""),
            "not json": (f"/api/studies/{sid}/note", None, 400, "a note is JSON"),
            "under /dashboard": (f"/dashboard/api/studies/{sid}/note", note, 403, "/api/studies"),
        }
        for what, (path, body, status, says) in refused.items():
            if entry == "dashboard-command" and path.startswith("/dashboard/"):
                continue  # that server has no /dashboard prefix: its page is at /
            kwargs = {"json": body} if body is not None else {"content": b"not json"}
            response = client.put(path, **kwargs)
            assert response.status_code == status, (what, response.text)
            assert says in response.json()["detail"], (what, response.text)
            assert response.json()["reason"] == response.json()["detail"]
        assert notes_of(a) == stored
        assert notes_of(b) == {}
