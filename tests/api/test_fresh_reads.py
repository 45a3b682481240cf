"""Reads that skip work (caches, merged queries) still show every change at the next request.

Each test reads through the real API, changes the study the way a worker or a client does,
and reads again: a cache keyed on too little would serve the first answer twice.
"""

from __future__ import annotations

import optuna
from api_harness import Api, add_trials, optuna_study, submit

ENDED = "search space exhausted: all 3 distinct configurations trained"


def test_the_study_and_its_summary_show_why_its_search_ended_once_a_worker_says_so(
    api: Api,
):
    study = submit(api)
    add_trials(api, study["optuna_name"], 4)
    optuna_id = optuna_study(api, study["optuna_name"])._study_id
    path = f"/studies/{study['id']}"
    before, summary = api.client.get(path).json(), api.client.get(f"{path}/summary").json()
    assert before["search_ended"] is None and summary["search_ended"] is None
    assert before["dashboard_url"].endswith(f"/dashboard/studies/{optuna_id}")

    optuna_study(api, study["optuna_name"]).set_user_attr("search_ended", ENDED)
    assert api.client.get(path).json()["search_ended"] == ENDED
    assert api.client.get(f"{path}/summary").json()["search_ended"] == ENDED


def test_a_study_without_its_optuna_study_yet_has_no_dashboard_link(api: Api):
    study = submit(api)
    optuna_name = study["optuna_name"]
    optuna.delete_study(study_name=optuna_name, storage=optuna_study(api, optuna_name)._storage)
    detail = api.client.get(f"/studies/{study['id']}").json()
    assert detail["dashboard_url"] is None and detail["search_ended"] is None
    assert detail["trial_counts"]["complete"] == 0


def test_a_page_of_finished_trials_shows_the_new_total_once_more_trials_finish(api: Api):
    study = submit(api)
    add_trials(api, study["optuna_name"], 3)
    path = f"/studies/{study['id']}/trials?limit=2"
    first = api.client.get(path).json()
    assert first["total"] == 3 and [t["number"] for t in first["items"]] == [0, 1]
    assert api.client.get(path).json() == first  # served again, from what was kept

    add_trials(api, study["optuna_name"], 2)
    again = api.client.get(path).json()
    assert again["total"] == 5 and again["items"] == first["items"]
    assert api.client.get(f"{path}&offset=4").json()["items"][0]["number"] == 4


def test_a_page_with_a_running_trial_shows_it_finish(api: Api):
    study = submit(api)
    add_trials(api, study["optuna_name"], 1)
    running = optuna_study(api, study["optuna_name"]).ask()
    running.set_user_attr("variant", "gaussian")
    path = f"/studies/{study['id']}/trials?limit=2"
    during = api.client.get(path).json()["items"][1]
    assert (during["state"], during["value"], during["variant"]) == ("running", None, "gaussian")
    running.set_user_attr("epoch_seconds", 0.25)
    assert api.client.get(path).json()["items"][1]["user_attrs"]["epoch_seconds"] == 0.25

    optuna_study(api, study["optuna_name"]).tell(running.number, 0.75)
    after = api.client.get(path).json()["items"][1]
    assert (after["state"], after["value"]) == ("complete", 0.75)


def test_the_summary_shows_new_trials_and_a_cancel_after_it_was_read(api: Api):
    study = submit(api)
    add_trials(api, study["optuna_name"], 4)
    path = f"/studies/{study['id']}/summary"
    first = api.client.get(path).json()
    assert (first["n_complete"], first["state"]) == (4, "queued")
    assert api.client.get(path).json() == first

    add_trials(api, study["optuna_name"], 2)
    assert api.client.get(path).json()["n_complete"] == 6
    assert api.client.post(f"/studies/{study['id']}/cancel").status_code == 200
    after = api.client.get(path).json()
    assert (after["n_complete"], after["state"]) == (6, "cancelled")
