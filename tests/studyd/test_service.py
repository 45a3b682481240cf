"""submit_spec: the queue row, its Optuna study (directions, attrs) and baselines, once."""

from __future__ import annotations

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from storage import queue
from studyd.daemon.service import submit_spec
from studyd.spec import SpecError, load_spec

SPEC = """
name: svc
dropout: {variants: [none, standard], rate: [0.1, 0.7]}
search: {n_trials: 7}
baselines: [{variant: none}, {variant: standard, rate: 0.5}]
"""


def test_submit_makes_the_row_the_optuna_study_and_enqueues_baselines_first(backend):
    engine, storage = backend
    record = submit_spec(engine, storage, load_spec(SPEC), priority=3)
    assert record.state == "queued" and record.target_trials == 7 and record.priority == 3
    assert record.optuna_name == f"svc-{record.id}"
    assert queue.get_study(engine, record.id).spec == load_spec(SPEC).model_dump(mode="json")
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    assert study.directions == [StudyDirection.MAXIMIZE]
    assert study.user_attrs["studyd_id"] == record.id
    assert load_spec(study.user_attrs["spec"]) == load_spec(SPEC)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [
        {"variant": "none"},
        {"variant": "standard", "rate": 0.5},
    ]


def test_same_idempotency_key_returns_the_study_without_enqueuing_twice(backend):
    engine, storage = backend
    first = submit_spec(engine, storage, load_spec(SPEC), idempotency_key="k1")
    again = submit_spec(engine, storage, load_spec(SPEC), idempotency_key="k1")
    assert again.id == first.id
    study = optuna.load_study(study_name=first.optuna_name, storage=storage)
    assert len(study.trials) == 2
    assert queue.count_studies(engine) == 1


def test_multi_objective_directions_come_from_the_objectives(backend):
    engine, storage = backend
    spec = load_spec("name: mo\nsearch: {objectives: [val_acc, param_count], pruner: none}")
    record = submit_spec(engine, storage, spec)
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert study.user_attrs["objectives"] == ["val_acc", "param_count"]


def test_a_dict_spec_is_validated_before_anything_is_written(backend):
    engine, storage = backend
    with pytest.raises(SpecError, match="model.width"):
        submit_spec(engine, storage, {"name": "x", "model": {"width": [1, 99999]}})
    assert queue.count_studies(engine) == 0
