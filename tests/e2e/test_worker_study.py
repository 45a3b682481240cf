"""Worker processes serve a submitted study to exactly its target, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
from optuna.trial import TrialState
from worker_harness import Cluster

from models.config import VARIANTS

pytestmark = [pytest.mark.slow, pytest.mark.process]

EVERY_VARIANT = """
name: e2e-variants
dataset: digits
model: {depth: [1, 2], width: [8, 24]}
dropout:
  variants: [none, standard, vanilla, gaussian, dropconnect, standout, rdrop, multisample]
  placements: [hidden, input+hidden]
  input_rate: [0.05, 0.3]
training: {epochs: 5, batch_size: 64, lr: [1.0e-4, 5.0e-2]}
search:
  sampler: tpe
  pruner: {name: median, startup_trials: 1, warmup_epochs: 1}  # per variant
  n_trials: 24
  seed: 0
baselines:  # one per variant, as in examples/shootout.yaml, so every variant is measured
  - {variant: none}
  - {variant: standard}
  - {variant: vanilla}
  - {variant: gaussian}
  - {variant: dropconnect}
  - {variant: standout}
  - {variant: rdrop}
  - {variant: multisample}
"""


@pytest.fixture
def cluster(db_url, tmp_path):
    running = Cluster(db_url, tmp_path)
    yield running
    running.close()


def test_two_workers_reach_exactly_the_target_with_every_variant_and_pruning(cluster):
    record = cluster.submit(EVERY_VARIANT)
    workers = [cluster.start_worker("--once") for _ in range(2)]
    for n, process in enumerate(workers):
        assert cluster.wait_exit(process, 240) == 0, cluster.log(n)

    from storage import queue

    done = queue.get_study(cluster.engine, record.id)
    assert done.state == "done", done.error
    assert done.finished == done.claimed == 24
    trials = cluster.trials(record)
    states = Counter(t.state for t in trials)
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == 24
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert states[TrialState.PRUNED] > 0
    # The baselines ran first (every variant), then 16 sampled trials.
    assert {t.params["variant"] for t in trials[:8]} == set(VARIANTS)
    assert {t.user_attrs["variant"] for t in trials} == set(VARIANTS)
    assert all(t.user_attrs.get("baseline") for t in trials[:8])
    assert not any(t.user_attrs.get("baseline") for t in trials[8:])
    # Both processes trained, and every trial carries its record.
    assert len({t.user_attrs["worker_id"] for t in trials}) == 2
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["dataset"] == "digits" and attrs["device"] == "cpu"
        assert len(attrs["curve"]) == len(trial.intermediate_values)
        assert attrs["gap"] == pytest.approx(attrs["train_acc"] - attrs["val_acc"])
        assert attrs["param_count"] > 0 and attrs["epoch_seconds"] > 0
        if trial.state == TrialState.COMPLETE:
            assert trial.value == attrs["val_acc"] == attrs["curve"][-1]["val_acc"]
            assert len(attrs["curve"]) == 5
        else:
            assert len(attrs["curve"]) < 5
    assert done.test_score is not None and 0.5 < done.test_score <= 1.0
