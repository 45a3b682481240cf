"""Issue 27 items 1 and 6, the fast layer: a database outage longer than the heartbeat grace,
mid-trial, on the in-memory store behind a switch that makes every call fail (`Outage`).

The worker waits the database out with its trial in hand (epoch reports held back, the tell
waited for) instead of stopping: the trial is COMPLETE with every epoch, nothing is failed or
reaped, the worker serves on and the study is done. On main before the fix the heartbeat gave up
after the grace, the worker stopped (`gone`) and its trial was left to the reaper, recorded as
"reaped: its worker stopped heartbeating" with its epochs thrown away.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError
from worker_fakes import StubTrainer, submitted
from worker_fakes import options as worker_options

from storage.memory_store import MemoryWorkerStore
from studyd.daemon.worker import Worker

GRACE = 1.0
OUTAGE_S = 4 * GRACE
EPOCHS = 6
SPEC = "name: s\nmodel: {width: 8}\ntraining: {epochs: 6}\nsearch: {n_trials: 2, pruner: none}"


# The store's calls that read only what the worker holds in memory (no database round trip:
# a running trial's attributes come from Optuna's cache of it).
LOCAL = {"slot_waiter", "trial_id", "has_user_attr"}


class Outage:
    """The store, with every call that reaches the database failing as a dead database's
    would while `down` is set."""

    def __init__(self, store: MemoryWorkerStore) -> None:
        self._store = store
        self.down = threading.Event()
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._store, name)
        if not callable(real) or name in LOCAL:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down.is_set():
                self.refused += 1
                raise OperationalError(name, {}, Exception("connection refused"))
            return real(*args, **kwargs)

        return call


def test_a_trial_outlives_an_outage_longer_than_the_grace_and_keeps_every_epoch(tmp_path):
    store = MemoryWorkerStore()
    _, study_id, name = submitted(store, SPEC)
    outage = Outage(store)
    trainer = StubTrainer()
    began: list[float] = []

    def hook(epoch: int, _: int) -> None:
        if epoch == 2 and not began:  # the first trial, a third of the way in
            began.append(time.monotonic())
            outage.down.set()
            threading.Timer(OUTAGE_S, outage.down.clear).start()
        if began and epoch >= 2:
            time.sleep(0.3)  # the trial trains on, and ends while the database is still down

    trainer.hook = hook
    options = worker_options(tmp_path, batch_trials=1, grace=GRACE, heartbeat=0.1)
    options.reaper_period = 0.2
    running = Worker.on(outage, options, trainer=trainer)  # type: ignore[arg-type]
    assert running.run() == 2
    assert not running.gone  # waited the database out, not stopped
    assert outage.refused > 0 and time.monotonic() - began[0] >= OUTAGE_S
    trials = store.load_study(name).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, [
        (t.state, t.user_attrs.get("error")) for t in trials
    ]
    # What was trained through the outage is kept: one report per epoch, none lost.
    assert all(sorted(t.intermediate_values) == list(range(EPOCHS)) for t in trials)
    done = store.get_study(study_id)
    assert (done.state, done.finished) == ("done", 2)
