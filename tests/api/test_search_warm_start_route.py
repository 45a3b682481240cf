"""POST /studies with search.warm_start, in-process (TestClient over a real SQLite file)."""

from __future__ import annotations

import optuna
from api_harness import in_process_api
from optuna.trial import TrialState
from replicated_studies import add_to_study, replicated_trials, spec


def test_a_warm_started_study_holds_the_sources_search_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    with in_process_api(url) as app:
        client = app.client
        source = client.post("/studies", json=spec("src", "digits", ["standard", "none"])).json()
        add_to_study(url, source["optuna_name"], replicated_trials({"standard": 0.9, "none": 0.8}))
        warm = spec("warm", "digits", ["standard", "none", "gaussian"])
        warm["search"]["warm_start"] = [source["id"]]
        created = client.post("/studies", json=warm)
        assert created.status_code == 201, created.text
        assert created.json()["spec"]["search"]["warm_start"] == [source["id"]]
        study = optuna.load_study(study_name=created.json()["optuna_name"], storage=url)
        carried = study.get_trials(states=(TrialState.COMPLETE,))
        # The two search trials; their seed replicates are the same configurations again.
        assert [t.user_attrs["variant"] for t in carried] == ["standard", "none"]
        other = spec("other", "mnist1d", ["standard", "none"])
        other["search"]["warm_start"] = [source["id"]]
        refused = client.post("/studies", json=other)
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            {
                "loc": "search.warm_start",
                "msg": f"study {source['id']} ran on another dataset (digits); warm start takes "
                "trials of the same dataset only",
            }
        ]
