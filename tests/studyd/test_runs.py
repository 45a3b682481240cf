"""The worker's runs: canonical dedupe (reused, not retrained), diagnostics, constraints, and
seed replicates that hold the study open until they finish. In-process worker, tiny nets."""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.trial import TrialState

from storage import queue
from studyd.daemon.records import FLAT_DIAGNOSTICS
from studyd.daemon.runs import replicate_targets
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import load_spec


def _run(backend, tmp_path, text):
    engine, storage = backend
    record = submit_spec(engine, storage, load_spec(text))
    options = WorkerOptions(device="cpu", once=True, heartbeat=0.2, poll=0.05, data_dir=tmp_path)
    Worker(engine, storage, options).run()
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    return queue.get_study(engine, record.id), study


def test_three_canonical_configs_end_the_search_at_three_counted_trials(sqlite_backend, tmp_path):
    # standard with p = 0 is `none`: {none, standard 0.3, standard 0.5} are the only runs. A
    # proposal of one the study has is told its result, not counted, and once all three are
    # trained the search ends early, saying why.
    done, study = _run(
        sqlite_backend,
        tmp_path,
        "name: dedupe\nmodel: {depth: 1, width: 8}\ntraining: {epochs: 2, lr: 0.01}\n"
        "dropout: {variants: [none, standard], rate: {choices: [0.0, 0.3, 0.5]}}\n"
        "search: {n_trials: 10, sampler: random, pruner: none}",
    )
    assert done.state == "done" and done.finished == done.claimed == done.target_trials == 3
    assert study.user_attrs["search_ended"].startswith("search space exhausted: all 3")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    trained = [t for t in trials if "reused_from" not in t.user_attrs]
    duplicates = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(trained) == 3 and len(trials) == 3 + len(duplicates) and duplicates
    assert len({t.user_attrs["run_key"] for t in trained}) == 3
    by_run = {t.user_attrs["run_key"]: t for t in trained}
    for t in trials:
        original = by_run[t.user_attrs["run_key"]]
        assert t.value == original.value and t.user_attrs["gap"] == original.user_attrs["gap"]
        if t is not original:
            assert t.user_attrs["reused_from"] == original.number < t.number
            assert t.user_attrs["duplicate_of"] == original.number
    zero_rate = [t for t in trials if t.params.get("rate") == 0.0]
    assert zero_rate and all(t.user_attrs["variant"] == "none" for t in zero_rate)
    for t in trained:
        diag = t.user_attrs["diagnostics"]
        assert diag["mc_passes"] == 20 and diag["n"] > 0
        assert all(t.user_attrs[k] == diag[k] for k in FLAT_DIAGNOSTICS)
        assert 0 <= t.user_attrs["val_ece"] <= 1 and t.user_attrs["ms_per_1k"] > 0
        # No stochastic layer: MC dropout is the eval prediction and train = eval mode.
        if t.user_attrs["variant"] == "none":
            assert diag["stochastic_layers"] == 0 and diag["train_eval_sym_kl"] == 0


def test_constraints_are_recorded_for_optuna_and_the_best_trial_is_feasible(
    sqlite_backend, tmp_path
):
    # digits: 64 inputs, 10 classes; one hidden layer of w units has 75w + 10 parameters.
    done, study = _run(
        sqlite_backend,
        tmp_path,
        "name: constrained\nmodel: {depth: 1, width: {choices: [4, 8, 64]}}\n"
        "training: {epochs: 3}\ndropout: {variants: [none]}\n"
        "search: {n_trials: 6, sampler: random, pruner: none, seed: 3, "
        "constraints: ['param_count <= 700']}",
    )
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    for t in trials:
        assert t.constraints == {"param_count <= 700": t.user_attrs["param_count"] - 700}
    feasible = [t for t in trials if t.user_attrs["param_count"] <= 700]
    assert feasible and len(feasible) < len(trials)
    # The 64-wide proposals (4810 parameters) were told infeasible before training: PRUNED,
    # no epoch trained; every trained trial is feasible.
    assert all(t.state == TrialState.COMPLETE for t in feasible)
    assert all(t.state == TrialState.PRUNED and not t.intermediate_values
               for t in trials if t not in feasible)  # fmt: skip
    assert study.best_trial.number in {t.number for t in feasible}
    assert study.user_attrs["test_trial"] in {t.number for t in feasible}
    assert done.test_score is not None


def test_replicates_retrain_the_top_configs_with_new_seeds_before_the_study_is_done(
    sqlite_backend, tmp_path
):
    done, study = _run(
        sqlite_backend,
        tmp_path,
        "name: reps\nmodel: {depth: 1, width: [8, 32]}\ntraining: {epochs: 2}\n"
        "dropout: {variants: [none, standard], rate: 0.3}\n"
        "search: {n_trials: 4, sampler: random, pruner: none}\nrepeats: 2\ntop_k: 1",
    )
    trials = study.get_trials()
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: len(trials)}
    search = [t for t in trials if "replicate_of" not in t.user_attrs]
    replicates = [t for t in trials if "replicate_of" in t.user_attrs]
    variants = {t.user_attrs["variant"] for t in search}
    # top_k = 1, plus each other variant's best: one config per variant, 2 seeds each.
    assert len(search) == 4 and len(replicates) == 2 * len(variants)
    assert (done.state, done.target_trials, done.finished) == ("done", len(trials), len(trials))
    for r in replicates:
        original = study.trials[r.user_attrs["replicate_of"]]
        assert r.user_attrs["config_key"] == original.user_attrs["config_key"]
        assert r.user_attrs["train"]["seed"] == r.user_attrs["replicate_seed"] in (1, 2)
        assert r.user_attrs["run_key"] != original.user_attrs["run_key"]
    assert {r.user_attrs["variant"] for r in replicates} == variants
    assert done.test_score is not None


def test_distinct_runs_counts_canonical_runs_of_a_finite_space_and_none_for_a_continuum():
    from studyd.daemon.runs import REPEATS_IN_A_ROW, distinct_runs, search_exhausted

    finite = load_spec(
        "name: f\nmodel: {depth: 1, width: 8}\ntraining: {epochs: 2, lr: 0.01}\n"
        "dropout: {variants: [none, standard], placements: [hidden, pre_activation], "
        "rate: {choices: [0.0, 0.3, 0.5]}}"
    )
    # none; standard 0.3 and 0.5 (pre_activation is hidden under ReLU; p = 0 is none).
    assert distinct_runs(finite, (64, 10)) == 3
    continuum = load_spec("name: c\ndropout: {variants: [none, standard], rate: [0.1, 0.5]}")
    assert distinct_runs(continuum, (64, 10)) is None
    study = optuna.create_study()
    assert search_exhausted(study, continuum, None, REPEATS_IN_A_ROW - 1) is None
    ended = search_exhausted(study, continuum, None, REPEATS_IN_A_ROW)
    assert ended is not None and f"proposed {REPEATS_IN_A_ROW} configurations in a row" in ended


def test_a_variant_with_no_feasible_trial_gets_no_replicates():
    # The verdict counts feasible trials only: replicating an infeasible config would train
    # seeds that no answer uses. `standard` beats `none` here only where it breaks the bound.
    spec = load_spec("name: c\nsearch: {constraints: ['param_count <= 700']}\ntop_k: 1\nrepeats: 2")
    study = optuna.create_study(direction="maximize")
    for number, (variant, value, violation) in enumerate(
        [("none", 0.7, -10.0), ("standard", 0.9, 4110.0), ("none", 0.6, 0.0)]
    ):
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                user_attrs={"variant": variant, "config_key": f"cfg-{number}"},
                system_attrs={"constraints:param_count <= 700": violation},
            )
        )
    assert [t.number for t in replicate_targets(study, spec)] == [0]
