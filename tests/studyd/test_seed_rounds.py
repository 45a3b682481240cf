"""`repeats: {auto: true, max_seeds: N}` on the worker's fast layer: the real claim loop and
finaliser on the in-memory store, a stub trainer whose seeds differ. Rounds of seed replicates
stop once the leader's difference to its rival is decided, and at `max_seeds` when it never is."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError
from worker_fakes import StubTrainer, submitted, worker

from models.data import DatasetSplits
from models.training import TrainResult
from storage.memory_store import MemoryWorkerStore
from studyd.analysis.evidence import with_undecided
from studyd.daemon.seed_rounds import summary_records

# none trains to 0.4 and standard (rate 0.3) to 0.7 with the stub's curve: a 30-point gap.
SPEC = """
name: auto
model: {width: 8}
dropout: {variants: [none, standard], rate: 0.3}
training: {epochs: 3, seed: 100, lr: 0.001}
search: {n_trials: 2, sampler: grid, pruner: none}
top_k: 1
repeats: {auto: true, max_seeds: %d}
"""


class SeedNoiseTrainer(StubTrainer):
    """The stub's value plus noise of sd `noise_sd`, drawn from the run's seed and value: each
    (configuration, seed) measures differently, as real seeds do."""

    noise_sd: float = 0.01

    def outcome(
        self, result: TrainResult, pruned: bool, data: DatasetSplits, seed: int
    ) -> dict[str, Any]:
        attrs = super().outcome(result, pruned, data, seed)
        draw = random.Random(f"{seed}:{attrs['val_acc']:.6f}").gauss(0.0, self.noise_sd)
        return {**attrs, "val_acc": attrs["val_acc"] + draw}


@pytest.fixture
def store() -> MemoryWorkerStore:
    return MemoryWorkerStore()


def _seeds_per_config(store: MemoryWorkerStore, name: str) -> dict[str, list[int]]:
    seeds = defaultdict(list)
    for t in store.load_study(name).get_trials(deepcopy=False):
        if "replicate_of" in t.user_attrs:
            assert t.state == TrialState.COMPLETE
            seeds[t.user_attrs["variant"]].append(t.user_attrs["replicate_seed"] - 100)
    return {variant: sorted(s) for variant, s in seeds.items()}


def _run(store: MemoryWorkerStore, trainer: StubTrainer, tmp_path, max_seeds: int):
    spec, study_id, name = submitted(store, SPEC % max_seeds)
    worker(store, trainer, tmp_path, batch_trials=1).run()
    record = store.get_study(study_id)
    assert record.state == "done" and record.test_score is not None
    assert record.finished == record.target_trials
    trials = store.load_study(name).get_trials(deepcopy=False)
    verdict = with_undecided("Verdict.", summary_records(trials), "maximize", spec.auto_repeats)
    return _seeds_per_config(store, name), verdict


def test_rounds_stop_once_the_leader_is_shown_better(store, tmp_path):
    seeds, verdict = _run(store, SeedNoiseTrainer(), tmp_path, max_seeds=20)
    # 3 seeds, then one per round: the sequence first decides at 5 (T_5 = 8.45 with sd ≈ 1.4
    # points excludes 0 from a 30-point difference); a fixed cap of 20 is never approached.
    assert seeds == {"standard": [1, 2, 3, 4, 5], "none": [1, 2, 3, 4, 5]}
    assert verdict == "Verdict."  # nothing undecided to add


def test_rounds_stop_at_max_seeds_while_undecided(store, tmp_path):
    # Without seed noise each paired difference is the same: no error estimate, never decided.
    seeds, verdict = _run(store, StubTrainer(), tmp_path, max_seeds=6)
    assert seeds == {"standard": [1, 2, 3, 4, 5, 6], "none": [1, 2, 3, 4, 5, 6]}
    assert verdict == (
        "Verdict. Undecided — standard vs none (6 seeds, +30.0 points so far): "
        "more seeds than are sensible."
    )


def test_a_fixed_repeats_keeps_one_round(store, tmp_path):
    fixed = (SPEC % 3).replace("repeats: {auto: true, max_seeds: 3}", "repeats: 4")
    _, study_id, name = submitted(store, fixed)
    worker(store, SeedNoiseTrainer(), tmp_path, batch_trials=1).run()
    assert store.get_study(study_id).state == "done"
    assert _seeds_per_config(store, name) == {"standard": [1, 2, 3, 4], "none": [1, 2, 3, 4]}


class OutageOnceStore(MemoryWorkerStore):
    """The database goes away once, just after a round was enqueued and before its target was
    extended: what a claimant that dies there leaves behind."""

    def __init__(self) -> None:
        super().__init__()
        self.outages = 0

    def extend_replicates(self, study_id: int, worker_id: int, extra: int):
        if self.outages == 0:
            self.outages += 1
            raise OperationalError("UPDATE studies", {}, Exception("the database is gone"))
        return super().extend_replicates(study_id, worker_id, extra)


def test_a_round_left_half_done_is_finished_once_by_the_next_claim(tmp_path):
    store = OutageOnceStore()
    seeds, _ = _run(store, SeedNoiseTrainer(), tmp_path, max_seeds=20)
    assert store.outages == 1
    # The same rounds as without the outage: nothing enqueued twice, nothing left waiting.
    assert seeds == {"standard": [1, 2, 3, 4, 5], "none": [1, 2, 3, 4, 5]}
