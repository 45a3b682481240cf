"""Issue 27 item 10: the dashboard note's verdict is the summary's, seed replicates included.

A study with `repeats: 2` has six seed replicates, two per configuration: too few for the paired
tests (three seeds each), so both fall back to the medians. The summary said so; the note said
"no seed replicates". Both now say the one sentence `analysis.evidence.headline_verdict` writes.
"""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna_dashboard import get_note
from serve_harness import in_process_api

from storage.engine import make_engine
from storage.optuna_storage import make_optuna_storage
from studyd.daemon.dashboard_note import write_study_note
from studyd.spec import validate_spec

VARIANTS = ["none", "standard", "gaussian"]
SPEC = {
    "name": "agree",
    "dropout": {"variants": VARIANTS, "placements": ["hidden"]},
    "training": {"epochs": 1},
    "search": {"n_trials": 3},
    "repeats": 2,
}


def add_trial(study: optuna.Study, variant: str, value: float, seed: int, **attrs) -> None:
    user_attrs = {
        "variant": variant,
        "placement": "hidden",
        "config_key": f"config-{variant}",
        "train": {"seed": seed},
        **attrs,
    }
    study.add_trial(
        optuna.trial.create_trial(
            params={"variant": variant},
            distributions={"variant": CategoricalDistribution(VARIANTS)},
            value=value,
            user_attrs=user_attrs,
        )
    )


def test_the_note_says_what_the_summary_says_about_seed_replicates(db_url):
    with in_process_api(db_url) as api:
        client = api.client
        created = client.post("/studies", json=SPEC).json()
        storage = make_optuna_storage(db_url)
        study = optuna.load_study(study_name=created["optuna_name"], storage=storage)
        for number, (variant, value) in enumerate(zip(VARIANTS, (0.90, 0.94, 0.92), strict=True)):
            add_trial(study, variant, value, seed=0)
            for seed in (1, 2):  # repeats: 2 → two replicates of each configuration
                add_trial(study, variant, value - 0.01 * seed, seed, replicate_of=number)
        summary = client.get(f"/studies/{created['id']}/summary").json()

    assert summary["n_replicates"] == 6
    assert summary["verdict"].startswith("Not enough seed replicates for a verdict")
    spec = validate_spec(created["spec"])
    note = write_study_note(make_engine(db_url), study, spec, test_score=None)
    assert get_note(study) == note
    assert f"**Verdict:** {summary['verdict']}" in note.splitlines()
    assert "no seed replicates" not in note
