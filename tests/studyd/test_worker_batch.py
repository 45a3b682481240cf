"""`--batch-trials K`: K slots of one study trained as one stack; same target, same results."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import studyd.daemon.search
import studyd.daemon.training
import studyd.daemon.worker.sizing
from storage import queue
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions, auto_batch_trials
from studyd.spec import load_spec

# Standout cannot share a stack (models.batched.BATCHABLE_VARIANTS): those trials train alone.
SPEC = (
    "name: batch\nmodel: {depth: 2, width: 32}\n"
    "dropout: {variants: [standard, standout], placements: [hidden], rate: [0.1, 0.5]}\n"
    "training: {epochs: 6, batch_size: 64, lr: [0.002, 0.006]}\n"
    "search: {sampler: random, pruner: none, n_trials: 10, seed: 3}"
)


@pytest.fixture
def stacks(monkeypatch) -> list[int]:
    """Trials per `train_batched` call, in order (a spy: the real one runs)."""
    sizes: list[int] = []
    real = studyd.daemon.training.train_batched

    def spy(model_cfgs, *args, **kwargs):
        sizes.append(len(model_cfgs))
        return real(model_cfgs, *args, **kwargs)

    monkeypatch.setattr(studyd.daemon.training, "train_batched", spy)
    return sizes


def _submitted(tmp_path, name: str, spec: str):
    """(engine, Optuna storage, record) of `spec` submitted to a fresh SQLite database."""
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    ensure_schema(url)
    engine, storage = make_engine(url), make_optuna_storage(url)
    return engine, storage, submit_spec(engine, storage, load_spec(spec))


def _options(tmp_path) -> WorkerOptions:
    """A `--once` CPU worker's options, quick to poll, slow to reap."""
    return WorkerOptions(
        device="cpu", once=True, heartbeat=0.5, grace=30, poll=0.05, data_dir=tmp_path
    )


def _run(tmp_path, name: str, batch_trials: int | str, spec: str = SPEC):
    engine, storage, record = _submitted(tmp_path, name, spec)
    options = _options(tmp_path)
    options.batch_trials = batch_trials
    ran = Worker(engine, storage, options).run()
    trials = optuna.load_study(study_name=record.optuna_name, storage=storage).trials
    done = queue.get_study(engine, record.id)
    workers = queue.list_workers(engine)
    engine.dispose()
    return ran, trials, done, workers


@pytest.mark.slow
def test_batched_worker_reaches_exactly_its_target_and_agrees_with_unbatched(tmp_path, stacks):
    ran, batched, done, workers = _run(tmp_path, "batched", 4)
    assert ran == done.target_trials == done.finished == done.claimed == 10
    assert done.state == "done" and done.test_score is not None
    assert workers == []  # every lease row was unregistered
    assert len(batched) == 10 and all(t.state == TrialState.COMPLETE for t in batched)
    # Batchable trials shared stacks of up to 4 (a lone one: a stack of one); standout trials
    # (never stacked) trained alone.
    variants = [t.user_attrs["variant"] for t in batched]
    assert "standout" in variants and stacks and all(1 <= k <= 4 for k in stacks)
    assert sum(stacks) <= sum(v != "standout" for v in variants)

    _, alone, _, _ = _run(tmp_path, "alone", 1)
    by_number = {t.number: t for t in alone}
    diffs = []
    for trial in batched:
        other = by_number[trial.number]
        # The random sampler draws the same configs in the same order either way.
        assert trial.params == other.params
        assert trial.user_attrs["run_key"] == other.user_attrs["run_key"]
        if "reused_from" in trial.user_attrs or "reused_from" in other.user_attrs:
            continue
        diffs.append(abs(trial.value - other.value))
    # Same init, data order and masks per seed (each trial draws from its own stream,
    # models/batched.py): the same trial alone or stacked differs only by float rounding, at
    # most one of digits' 359 validation predictions (it was up to 6 points with one stream for
    # the stack).
    print("batched-vs-alone val_acc differences", [round(d, 3) for d in diffs], stacks)
    assert diffs and max(diffs) <= 1 / 359 + 1e-9, diffs


# Seed 4 draws depths 1 and 2 for the batch's two trials: no two share an architecture.
LONE_SPEC = (
    "name: lone\nmodel: {depth: [1, 2], width: 16}\n"
    "dropout: {variants: [standard], placements: [hidden], rate: [0.1, 0.5]}\n"
    "training: {epochs: 3, batch_size: 64}\n"
    "search: {sampler: random, pruner: none, n_trials: 2, seed: 4}"
)


@pytest.mark.slow
def test_a_batchable_trial_alone_in_its_batch_trains_as_a_stack_of_one(tmp_path, stacks):
    """Cheaper per epoch than `train_model` (one flat Adam, no Fabric), the same to rounding."""
    _, batched, _, _ = _run(tmp_path, "lone-batched", 2, LONE_SPEC)
    assert sorted(t.user_attrs["config"]["hidden"] for t in batched) == [[16], [16, 16]]
    assert stacks == [1, 1]
    stacks.clear()
    _, alone, _, _ = _run(tmp_path, "lone-alone", 1, LONE_SPEC)
    assert stacks == []  # --batch-trials 1 trains with train_model
    for stacked, single in zip(batched, alone, strict=True):
        assert stacked.params == single.params
        assert abs(stacked.value - single.value) <= 1 / 359 + 1e-9
        for epoch, value in single.intermediate_values.items():
            assert stacked.intermediate_values[epoch] == pytest.approx(value, abs=1 / 359 + 1e-9)


def test_auto_batch_trials_is_bounded_by_memory_and_the_cpu_cap():
    assert auto_batch_trials("cpu", 64, 32, 2, 10, 64) == 8
    # A network whose state alone needs more than the machine: one trial at a time.
    assert auto_batch_trials("cpu", 10**6, 10**5, 8, 10, 4096) == 1


def test_auto_pads_a_width_range_only_while_padding_costs_less_than_stacking_saves():
    def k(model: str) -> int:
        spec = load_spec(f"name: k\nmodel: {model}")
        return studyd.daemon.worker.sizing.padded_trials(8, spec, 40, 10)

    assert k("{depth: 2, width: 128}") == 8  # nothing to pad
    assert k("{depth: 2, width: [120, 128]}") == 8  # padding costs little
    # The width-searching space stacks (measured 2.2× the trials/hour of K = 1) ...
    assert k("{depth: [1, 3], width: [4, 128]}") > 4
    # ... a deeper one fewer; wide nets whose widest of two costs more than a step's overhead
    # saves, none.
    assert 1 < k("{depth: 3, width: [4, 128]}") < k("{depth: [1, 3], width: [4, 128]}")
    assert k("{depth: 3, width: [4, 512]}") == 1


# One injected trial scores 1.0 at every epoch: the median pruner (1 startup trial, 2 warm-up
# epochs) stops every real trial at its first judged epoch, the third.
PRUNED_SPEC = (
    "name: prune-stack\nmodel: {depth: 1, width: 16}\n"
    "dropout: {variants: [standard], placements: [hidden], rate: [0.1, 0.5]}\n"
    "training: {epochs: 8, batch_size: 64}\n"
    "search: {sampler: random, pruner: {name: median, startup_trials: 1, warmup_epochs: 2},"
    " n_trials: 4, seed: 1}"
)


def _run_pruned(tmp_path, name: str, batch_trials: int):
    engine, storage, record = _submitted(tmp_path, name, PRUNED_SPEC)
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    study.add_trial(
        optuna.trial.create_trial(value=0.0, intermediate_values=dict.fromkeys(range(8), 1.0))
    )
    options = _options(tmp_path)
    options.batch_trials = batch_trials
    Worker(engine, storage, options).run()
    trials = optuna.load_study(study_name=record.optuna_name, storage=storage).trials
    engine.dispose()
    return trials[1:]


@pytest.mark.slow
def test_a_stacked_trial_is_pruned_at_the_same_epoch_as_alone(tmp_path, monkeypatch):
    trained: list[list[int]] = []  # epochs each stacked trial trained (a spy: the real one runs)
    real = studyd.daemon.training.train_batched

    def spy(*args, **kwargs):
        results = real(*args, **kwargs)
        trained.append([len(r.history) for r in results])
        return results

    monkeypatch.setattr(studyd.daemon.training, "train_batched", spy)
    stacked = _run_pruned(tmp_path, "stacked", 4)
    alone = _run_pruned(tmp_path, "alone", 1)
    assert trained == [[3, 3, 3, 3]]  # one stack; nobody trained past its pruning epoch
    for trials in (stacked, alone):
        assert [t.state for t in trials] == [TrialState.PRUNED] * 4
        assert [sorted(t.intermediate_values) for t in trials] == [[0, 1, 2]] * 4


def test_auto_stacks_end_at_the_searchs_start_up_counts():
    ramped = studyd.daemon.worker.sizing.ramped
    # Growing from one trial, and no stack straddles the median pruner's 5 start-up trials or
    # TPE's 10 random draws: TPE draws trials 10–19 from 10 results, as one at a time.
    assert [ramped(8, finished, (5, 10)) for finished in (0, 1, 3, 5, 10, 15)] == [1, 2, 2, 5, 8, 8]
    assert [ramped(8, finished, ()) for finished in (0, 1, 3, 7)] == [1, 2, 4, 8]
    assert ramped(1, 0, (5, 10)) == 1 and ramped(8, 9, (5, 10)) == 1
    # Trials other workers train were asked before the counts too: a second worker asks one at
    # 5 finished while the first trains a stack of 5, not another 5 random draws.
    assert ramped(8, 5, (5, 10), in_flight=5) == 1 and ramped(8, 5, (5, 10), in_flight=2) == 3
    assert ramped(8, 5, (5, 10), in_flight=9) == 1 and ramped(8, 12, (5, 10), in_flight=7) == 8


def test_startup_counts_are_the_pruners_and_the_samplers():
    def counts(search: str) -> tuple[int, ...]:
        spec = load_spec(f"name: s\nmodel: {{depth: 1, width: 8}}\nsearch: {search}")
        return studyd.daemon.search.startup_counts(spec)

    # The default median pruner waits for one finished trial of each variant (fair_pruning).
    assert counts("{}") == (1, studyd.daemon.search.SAMPLER_STARTUP_TRIALS) == (1, 10)
    assert counts("{sampler: gp, pruner: {name: percentile, startup_trials: 12}}") == (10, 12)
    assert counts("{sampler: random, pruner: hyperband}") == ()
    assert counts("{sampler: qmc, pruner: {name: median, startup_trials: 0}}") == ()


RAMP_SPEC = (
    "name: ramp\nmodel: {depth: 1, width: 16}\n"
    "dropout: {variants: [standard], placements: [hidden], rate: [0.1, 0.5]}\n"
    "training: {epochs: 3, batch_size: 64}\n"
    "search: {sampler: tpe, pruner: {name: median, startup_trials: 2}, n_trials: 8, seed: 2}"
)


@pytest.mark.slow
def test_auto_grows_its_stacks_up_to_the_pruners_start_up_count(tmp_path, stacks):
    assert WorkerOptions().batch_trials == "auto"  # the default this test is about
    _, trials, _, _ = _run(tmp_path, "ramp", "auto", RAMP_SPEC)
    # Trial 0 alone, then trial 1 alone (not 2: the pruner's 2 start-up trials end there), then
    # 3 and the last 3 (8 slots in all); with `auto` a lone trial trains as a stack of one.
    assert stacks == [1, 1, 3, 3]
    assert len(trials) == 8
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    first = [t for t in trials if t.number < 2]
    assert all(t.state == TrialState.COMPLETE for t in first)
    assert first[0].datetime_complete <= first[1].datetime_start
    assert first[1].datetime_complete <= min(t.datetime_start for t in trials if t.number >= 2)


HELD_SPEC = (
    "name: held\nmodel: {depth: 1, width: 16}\n"
    "dropout: {variants: [standard], placements: [hidden], rate: [0.1, 0.5]}\n"
    "training: {epochs: 2, batch_size: 64}\n"
    "search: {sampler: tpe, pruner: {name: median, startup_trials: 4}, n_trials: 12, seed: 2}"
)


@pytest.mark.slow
def test_auto_counts_other_workers_trials_in_flight_against_the_start_up(tmp_path, stacks):
    engine, storage, record = _submitted(tmp_path, "held", HELD_SPEC)
    # Another worker holds 3 of the study's slots, training (so to speak) all along.
    other = queue.register_worker(engine, host="elsewhere", device="cpu", pid=1)
    for _ in range(3):
        assert queue.claim_trial_slot(engine, other, study_id=record.id) is not None
    options = _options(tmp_path)
    options.max_trials = 6
    Worker(engine, storage, options).run()
    engine.dispose()
    # Alone, the ramp asks 1, 2, then 1 (4 − 3 finished) trials; with 3 in flight elsewhere each
    # trial before the pruner's 4 start-up trials is asked alone: 0 + 3, 1 + 3, … ≥ 4.
    assert stacks[:4] == [1, 1, 1, 1]


STARTUP_SPEC = (
    "name: startup\nmodel: {depth: 1, width: 8}\n"
    "dropout: {variants: [standard], placements: [hidden], rate: [0.1, 0.5]}\n"
    "training: {epochs: 2, batch_size: 64}\n"
    "search: {n_trials: 14, seed: 3}"
)


@pytest.mark.slow
def test_auto_asks_tpes_first_model_based_trial_after_its_random_ones_finished(tmp_path):
    # TPE (the default) draws at random until 10 trials have finished. A stack asked across
    # that count drew its later trials at random too (the 1, 2, 4, 8 ramp asked trials 7–14
    # at 7 finished): trial 10 must be asked once 10 trials have finished, as one at a time.
    _, trials, _, _ = _run(tmp_path, "startup", "auto", STARTUP_SPEC)
    assert len(trials) == 14 and all(t.state.is_finished() for t in trials)
    tenth_end = sorted(t.datetime_complete for t in trials)[9]
    assert [t.number for t in trials if t.datetime_start < tenth_end] == list(range(10))
    # So its random draws are the sampler's own: a one-at-a-time study with the same sampler
    # (the worker's seed: spec seed + worker id 1) draws the same ten configurations.
    spec = load_spec(STARTUP_SPEC)
    alone = optuna.create_study(
        direction="maximize", sampler=studyd.daemon.search.build_sampler(spec, seed_offset=1)
    )
    for _ in range(10):
        trial = alone.ask()
        studyd.daemon.search.suggest_config(trial, spec, (40, 10))
        alone.tell(trial, 0.5)
    assert [t.params for t in alone.trials] == [t.params for t in trials[:10]]


# Two depths in one claim: two stacks, trained one after the other.
TWO_DEPTHS_SPEC = (
    "name: depths\nmodel: {depth: [1, 2], width: 16}\n"
    "dropout: {variants: [standard], placements: [hidden], rate: [0.1, 0.5]}\n"
    "training: {epochs: 3, batch_size: 64}\n"
    "search: {sampler: random, pruner: none, n_trials: 6, seed: 4}"
)


@pytest.mark.slow
def test_a_claims_first_stack_is_told_before_its_second_trains(tmp_path, monkeypatch):
    engine, storage, record = _submitted(tmp_path, "depths", TWO_DEPTHS_SPEC)
    real = studyd.daemon.training.train_batched
    seen: list[tuple[list[int], dict[int, TrialState]]] = []  # (depths, states at its start)

    def spy(model_cfgs, *args, **kwargs):
        study = optuna.load_study(study_name=record.optuna_name, storage=storage)
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        seen.append(([len(m.hidden) for m in model_cfgs], states))
        return real(model_cfgs, *args, **kwargs)

    monkeypatch.setattr(studyd.daemon.training, "train_batched", spy)
    options = _options(tmp_path)
    options.batch_trials = 6
    Worker(engine, storage, options).run()
    trials = optuna.load_study(study_name=record.optuna_name, storage=storage).trials
    engine.dispose()
    assert all(t.state == TrialState.COMPLETE for t in trials) and len(trials) == 6
    by_depth = {d: [t.number for t in trials if t.params["depth"] == d] for d in (1, 2)}
    assert all(len(numbers) >= 2 for numbers in by_depth.values()), by_depth
    assert len(seen) == 2
    first_depth = seen[0][0][0]
    # When the second stack starts, the first stack's trials are already COMPLETE (told), the
    # second's still RUNNING.
    states = seen[1][1]
    assert all(states[n] == TrialState.COMPLETE for n in by_depth[first_depth])
    assert all(states[n] == TrialState.RUNNING for n in by_depth[3 - first_depth])
