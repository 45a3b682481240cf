"""Issue 27 item 12: a seed replicate is never the study's best trial.

A replicate trains a search trial's configuration again on a fresh seed; the best of several
such draws flatters the configuration with its luckiest seed. The study's best trial (the API's
`best_trial`, the summary's `best`, and the trial the test score retrains) is now chosen among
search trials, and the OpenAPI schema states the rule where the best is shown.
"""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from serve_harness import in_process_api

from storage.optuna_storage import make_optuna_storage
from studyd.daemon.records import best_trial

VARIANTS = ["none", "standard"]
SPEC = {
    "name": "lucky",
    "dropout": {"variants": VARIANTS, "placements": ["hidden"]},
    "training": {"epochs": 1},
    "search": {"n_trials": 3},
    "repeats": 2,
}


def add_trial(study: optuna.Study, variant: str, value: float, **attrs) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            params={"variant": variant},
            distributions={"variant": CategoricalDistribution(VARIANTS)},
            value=value,
            user_attrs={"variant": variant, "config_key": f"config-{variant}", **attrs},
        )
    )


def test_the_best_trial_is_a_search_trial_not_a_lucky_replicate(db_url):
    with in_process_api(db_url) as api:
        client = api.client
        created = client.post("/studies", json=SPEC).json()
        study = optuna.load_study(
            study_name=created["optuna_name"], storage=make_optuna_storage(db_url)
        )
        add_trial(study, "none", 0.90)  # 0
        add_trial(study, "standard", 0.94)  # 1: the search's best
        add_trial(study, "standard", 0.92)  # 2
        add_trial(study, "standard", 0.99, replicate_of=1)  # 3: the best of two fresh seeds
        add_trial(study, "standard", 0.93, replicate_of=1)  # 4
        detail = client.get(f"/studies/{created['id']}").json()
        summary = client.get(f"/studies/{created['id']}/summary").json()
        schema = client.get("/openapi.json").json()["components"]["schemas"]

    assert detail["best_trial"]["number"] == 1, detail["best_trial"]
    assert summary["best"]["number"] == 1, summary["best"]
    assert best_trial(study).number == 1  # the trial the test score retrains
    for model, field in (("StudyDetail", "best_trial"), ("Summary", "best")):
        assert (
            "seed replicates are not candidates"
            in schema[model]["properties"][field]["description"]
        )
