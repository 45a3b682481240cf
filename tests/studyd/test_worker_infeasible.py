"""A proposal that breaks a bound its config decides (param_count) is told before training: PRUNED
with its constraint value, no epoch trained, its slot not counted; a search that keeps proposing
such configurations ends with a reason. A real worker in process on SQLite, tiny nets."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from storage import queue
from studyd.daemon.config_constraints import INFEASIBLE_ATTR, INFEASIBLE_IN_A_ROW
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import load_spec

# 64 inputs · 256 + 256 + 2570 = 19,210 parameters > 1000; width 4: 64·4 + 4 + 50 = 310.
SPEC = (
    "name: bound\ndataset: digits\nmodel: {depth: 1, width: {choices: %s}}\n"
    "training: {epochs: 2, lr: 0.01}\ndropout: {variants: [standard], rate: [0.1, 0.5]}\n"
    "search: {n_trials: 3, sampler: random, pruner: none, seed: 0, "
    "constraints: ['param_count <= 1000']}"
)


def _run(sqlite_backend, tmp_path, widths: str) -> tuple[optuna.Study, queue.StudyRecord]:
    engine, storage = sqlite_backend
    record = submit_spec(engine, storage, load_spec(SPEC % widths))
    options = WorkerOptions(device="cpu", once=True, heartbeat=0.2, poll=0.05, data_dir=tmp_path)
    Worker(engine, storage, options).run()
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    return study, queue.get_study(engine, record.id)


def test_a_too_wide_proposal_is_told_untrained_and_does_not_count(sqlite_backend, tmp_path):
    study, record = _run(sqlite_backend, tmp_path, "[4, 256]")
    wide = [t for t in study.trials if t.user_attrs.get("config", {}).get("hidden") == [256]]
    narrow = [t for t in study.trials if t.user_attrs.get("config", {}).get("hidden") == [4]]
    assert wide and narrow
    for t in wide:
        assert t.state == TrialState.PRUNED and t.intermediate_values == {}
        assert t.user_attrs[INFEASIBLE_ATTR] == "19,210 parameters; param_count <= 1000"
        assert t.user_attrs["infeasible"] == "param_count <= 1000 (over by 18210)"
        assert t.constraints == {"param_count <= 1000": 18210.0}
        assert "curve" not in t.user_attrs
    # The three counted slots are trained runs; the wide proposals gave theirs back.
    trained = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert record.state == "done" and len(trained) == 3
    assert all(t.user_attrs["param_count"] == 310 for t in trained)


def test_a_search_that_proposes_only_infeasible_configs_ends_with_a_reason(
    sqlite_backend, tmp_path
):
    study, record = _run(sqlite_backend, tmp_path, "[256, 512]")
    assert all(t.state == TrialState.PRUNED and not t.intermediate_values for t in study.trials)
    why = study.user_attrs["search_ended"]
    assert f"{INFEASIBLE_IN_A_ROW} configurations in a row" in why and "param_count" in why
    assert record.state in ("done", "failed")
