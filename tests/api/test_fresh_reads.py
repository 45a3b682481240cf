"""Reads that skip work (caches, merged queries) still show every change at the next request.

Each test reads through the real API, changes the study the way a worker or a client does,
and reads again: a cache keyed on too little would serve the first answer twice.
"""

from __future__ import annotations

import optuna
from api_harness import Server, add_trials, optuna_study, submit

ENDED = "search space exhausted: all 3 distinct configurations trained"


def test_the_study_and_its_summary_show_why_its_search_ended_once_a_worker_says_so(
    server: Server,
):
    study = submit(server)
    add_trials(server, study["optuna_name"], 4)
    optuna_id = optuna_study(server, study["optuna_name"])._study_id
    path = f"/studies/{study['id']}"
    before, summary = server.client.get(path).json(), server.client.get(f"{path}/summary").json()
    assert before["search_ended"] is None and summary["search_ended"] is None
    assert before["dashboard_url"].endswith(f"/dashboard/studies/{optuna_id}")

    optuna_study(server, study["optuna_name"]).set_user_attr("search_ended", ENDED)
    assert server.client.get(path).json()["search_ended"] == ENDED
    assert server.client.get(f"{path}/summary").json()["search_ended"] == ENDED


def test_a_study_without_its_optuna_study_yet_has_no_dashboard_link(server: Server):
    study = submit(server)
    optuna_name = study["optuna_name"]
    optuna.delete_study(study_name=optuna_name, storage=optuna_study(server, optuna_name)._storage)
    detail = server.client.get(f"/studies/{study['id']}").json()
    assert detail["dashboard_url"] is None and detail["search_ended"] is None
    assert detail["trial_counts"]["complete"] == 0
