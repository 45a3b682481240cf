"""search.warm_start: a new study begins with earlier studies' finished trials that fit it."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from storage import queue
from studyd.daemon.search import suggest_config
from studyd.daemon.service import submit_spec
from studyd.spec import SpecError, load_spec

SOURCE = """
name: cold
dataset: digits
model: {depth: 1, width: [32, 256]}
dropout: {variants: [none, standard], placements: [hidden], rate: [0.1, 0.7]}
training: {epochs: 2}
search: {n_trials: 8}
"""
# Rates up to 0.5 only, one more variant: source trials above 0.5 do not fit.
TARGET = """
name: warm
dataset: digits
model: {depth: 1, width: [32, 256]}
dropout: {variants: [none, standard, gaussian], placements: [hidden], rate: [0.1, 0.5]}
training: {epochs: 2}
search: {n_trials: 4, warm_start: [SOURCE]}
"""


def _ran(backend, text: str, n: int, *, replicate: bool = True) -> queue.StudyRecord:
    """A study whose `n` trials a worker asked and finished (plus one seed replicate)."""
    engine, storage = backend
    spec = load_spec(text)
    record = submit_spec(engine, storage, spec)
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    for i in range(n + int(replicate)):
        trial = study.ask()
        model, _ = suggest_config(trial, spec, (64, 10))
        trial.set_user_attr("variant", model.variant)
        trial.set_user_attr("config_key", f"c{i}")
        if i == n:
            trial.set_user_attr("replicate_of", 0)
        trial.report(0.5, 0)
        study.tell(trial, 0.8 + 0.01 * i)
    return record


def _target(source_id: int, text: str = TARGET) -> str:
    return text.replace("SOURCE", str(source_id))


def test_fitting_trials_seed_the_new_study_declared_in_its_space(backend):
    engine, storage = backend
    source = _ran(backend, SOURCE, 12)
    old = optuna.load_study(study_name=source.optuna_name, storage=storage).get_trials()
    searched = [t for t in old if "replicate_of" not in t.user_attrs]
    fits = [t for t in searched if t.params.get("rate", 0.0) <= 0.5]
    assert 0 < len(fits) < len(searched), "the seed must give both kinds"
    record = submit_spec(engine, storage, load_spec(_target(source.id)))
    assert record.target_trials == 4  # carried trials are not new runs
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    carried = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.user_attrs["warm_start_from"] for t in carried] == [
        {"study": source.id, "trial": t.number} for t in fits
    ]
    assert [t.values for t in carried] == [t.values for t in fits]
    assert carried[0].intermediate_values == {0: 0.5}
    assert carried[0].distributions["variant"] == CategoricalDistribution(
        ["none", "standard", "gaussian"]
    )
    with_rate = next(t for t in carried if "rate" in t.params)
    assert with_rate.distributions["rate"] == FloatDistribution(0.1, 0.5)
    assert study.user_attrs["warm_start"] == {
        "trials": len(fits),
        "skipped": {str(source.id): len(searched) - len(fits)},
    }
    # The worker's next trial asks in this study's space: Optuna accepts it beside the carried
    # ones (a carried categorical with the source's two choices would be refused here).
    for _ in range(3):
        trial = study.ask()
        suggest_config(trial, load_spec(_target(source.id)), (64, 10))
        study.tell(trial, 0.9)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("dataset: digits", "dataset: mnist1d"), "ran on another dataset (digits)"),
        (("search: {", "search: {metric: val_loss, "), "optimised val_acc; this spec optimises"),
        (("epochs: 2}", "epochs: 3}"), "fixed training.epochs to 2, this spec to 3"),
    ],
)
def test_a_source_study_that_measured_something_else_is_refused(backend, change, reason):
    engine, storage = backend
    source = _ran(backend, SOURCE, 2)
    before = queue.count_studies(engine)
    with pytest.raises(SpecError, match="search.warm_start: ") as refused:
        submit_spec(engine, storage, load_spec(_target(source.id).replace(*change)))
    assert reason in str(refused.value)
    assert refused.value.errors[0]["loc"] == "search.warm_start"
    assert queue.count_studies(engine) == before  # nothing queued


def test_unknown_or_repeated_sources_are_refused(backend):
    engine, storage = backend
    with pytest.raises(SpecError, match="study 404 does not exist"):
        submit_spec(engine, storage, load_spec(_target(404)))
    with pytest.raises(SpecError, match="name each study once"):
        load_spec(_target(1).replace("[1]", "[1, 1]"))
