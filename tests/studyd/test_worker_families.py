"""A worker that lacks a study's model family leaves the study to workers that have it: it
does not fail it and does not claim it again (in-memory store, stub trainer: `worker_fakes`)."""

from __future__ import annotations

from worker_fakes import StubTrainer, submitted, worker

from storage.memory_store import MemoryWorkerStore

SMALL = "name: s\nmodel: {width: 8}\ntraining: {epochs: 2}\nsearch: {n_trials: 2, pruner: none}"


def test_a_study_of_a_family_not_installed_here_is_left_queued_for_other_workers(tmp_path):
    store = MemoryWorkerStore()
    # Written as a server with the plugin would have stored it (this one has no resnet9000).
    foreign = store.submit_study(
        name="foreign",
        spec={"name": "foreign", "model": {"family": "resnet9000", "channels": 8}},
        target_trials=3,
        priority=10,  # the first study any claim picks
    )
    _, mine, _ = submitted(store, SMALL)
    trainer = StubTrainer()
    assert worker(store, trainer, tmp_path, batch_trials=1).run() == 2
    left = store.get_study(foreign.id)
    assert left.state != "failed" and (left.claimed, left.finished) == (0, 0)
    assert store.get_study(mine).state == "done"
    assert len(trainer.calls) == 2  # only the study it can serve trained
