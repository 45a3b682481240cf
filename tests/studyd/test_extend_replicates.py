"""A study extended after its seed replicates ran: the real claim loop and finaliser on the
in-memory store with the stub trainer. The extension's new leader is replicated exactly once, only
its new replicates are added to the target, and the study ends done with target = finished."""

from __future__ import annotations

from collections import defaultdict

import pytest
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError
from worker_fakes import StubTrainer, submitted, worker

from storage.memory_store import MemoryWorkerStore
from studyd.daemon.runs import replicate_targets

# The stub's accuracy falls with the rate's distance from 0.3; the grid's first 2 runs (seed 100)
# are `none` and standard at 0.5, and the extension's 2 more find a closer rate: a new leader. The
# space has more runs than the two searches train, so a target extended by too many replicates
# would show as extra search runs (not be cut short as an exhausted space).
SPEC = """
name: ext
model: {width: 8}
dropout: {variants: [none, standard], rate: [0.1, 0.2, 0.3, 0.4, 0.5]}
training: {epochs: 3, seed: 100, lr: 0.001}
search: {n_trials: 2, sampler: grid, pruner: none}
top_k: 1
repeats: %s
"""


@pytest.fixture
def store() -> MemoryWorkerStore:
    return MemoryWorkerStore()


def _leader(store: MemoryWorkerStore, name: str, spec) -> dict:
    return replicate_targets(store.load_study(name), spec)[0].params


def _seeds_per_trial(store: MemoryWorkerStore, name: str) -> dict[int, list[int]]:
    """Search trial number → the seeds of its replicates (offset from the spec's), each run."""
    seeds = defaultdict(list)
    for t in store.load_study(name).get_trials(deepcopy=False):
        if "replicate_of" in t.user_attrs:
            assert t.state == TrialState.COMPLETE
            seeds[t.user_attrs["replicate_of"]].append(t.user_attrs["replicate_seed"] - 100)
    return {number: sorted(s) for number, s in seeds.items()}


def _run_extended(store: MemoryWorkerStore, tmp_path, repeats: str):
    """Submit, run to done, extend by 2, run to done again: (spec, name, seeds before, after)."""
    spec, study_id, name = submitted(store, SPEC % repeats)
    worker(store, StubTrainer(), tmp_path, batch_trials=1).run()
    first = store.get_study(study_id)
    assert first.state == "done" and first.finished == first.target_trials
    before, old_leader = _seeds_per_trial(store, name), _leader(store, name, spec)
    extended = store.extend_study(study_id, 2, replicates=True)
    assert (extended.state, extended.target_trials) == ("queued", first.finished + 2)
    worker(store, StubTrainer(), tmp_path, batch_trials=1).run()
    record = store.get_study(study_id)
    assert record.state == "done" and record.test_score is not None
    assert record.finished == record.target_trials
    assert _leader(store, name, spec) != old_leader  # the extension found a better configuration
    return record, first, before, _seeds_per_trial(store, name)


def test_a_fixed_repeats_replicates_the_new_leader_once(store, tmp_path):
    record, first, before, after = _run_extended(store, tmp_path, "2")
    [new] = set(after) - set(before)
    assert after == {**before, new: [1, 2]}  # the old ones untouched, each seed once
    # 2 search runs + 2 replicates of the new leader: nothing counted twice.
    assert record.target_trials == first.finished + 2 + 2


def test_auto_repeats_give_the_new_leader_the_first_rounds_seeds_up_to_max_seeds(store, tmp_path):
    # Without seed noise nothing is ever decided: the first study stops at max_seeds (4); the
    # new leader gets the first round's 3 seeds, and the next round's seed (5) is past the cap.
    record, first, before, after = _run_extended(store, tmp_path, "{auto: true, max_seeds: 4}")
    assert sorted(before.values()) == [[1, 2, 3, 4], [1, 2, 3, 4]]
    [new] = set(after) - set(before)
    assert after == {**before, new: [1, 2, 3]}
    assert record.target_trials == first.finished + 2 + 3


class OutageAtTheExtensionsReplicates(MemoryWorkerStore):
    """The database goes away once, just after the extension's replicates were enqueued and
    before the target grew: what a claimant that dies there leaves behind."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0

    def open_replicates(self, study_id: int, worker_id: int, extra: int):
        self.opened += 1
        if self.opened == 2:  # the first is the study's own replicates
            raise OperationalError("UPDATE studies", {}, Exception("the database is gone"))
        return super().open_replicates(study_id, worker_id, extra)


def test_replicates_left_enqueued_by_a_dead_claimant_are_counted_once(tmp_path):
    store = OutageAtTheExtensionsReplicates()
    record, first, before, after = _run_extended(store, tmp_path, "2")
    assert store.opened == 3
    [new] = set(after) - set(before)
    assert after == {**before, new: [1, 2]}
    assert record.target_trials == first.finished + 2 + 2
