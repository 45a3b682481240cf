"""Pruning decisions for a stack's trials from one read of the study's completed trials.

`Trial.should_prune()` hands the study to its pruner, and Optuna's median/percentile pruner
reads the COMPLETE trials through `study.get_trials`. On an RDBStorage that call reloads every
unfinished trial with its params and attributes (≈ 5–10 ms on SQLite with a stack running), and
a worker asks it per trial per epoch: most of a small stack's epoch. The COMPLETE trials are the
same for the K decisions of one epoch, and a finished trial's values and intermediate values
never change (Optuna refuses the update), so `CompletedTrials` keeps them and learns only the
ones completed since, from one indexed query of ids; `prune_decisions` gives the pruner a view
of the study whose `get_trials(states=(COMPLETE,))` answers from that one read. Pruners that
read or write other trials (successive halving, hyperband) are asked per trial as before.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.pruners import BasePruner, MedianPruner, NopPruner, PercentilePruner
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from storage.engine import read_only
from storage.optuna_schema import trials as trials_table
from storage.trial_attrs import rdb_backend

# Pruners whose `prune(study, trial)` reads nothing of the study but its COMPLETE trials (and
# its direction), and writes nothing: one read of those serves every decision of an epoch.
ONE_READ_PRUNERS: tuple[type[BasePruner], ...] = (MedianPruner, PercentilePruner, NopPruner)
_COMPLETE = (TrialState.COMPLETE,)
# Built once: it runs every epoch (building it per call cost as much as running it).
_COMPLETE_IDS = sa.select(trials_table.c.trial_id).where(
    trials_table.c.study_id == sa.bindparam("study_id"),
    trials_table.c.state == TrialState.COMPLETE.name,
)


class CompletedTrials:
    """A study's COMPLETE trials, kept between reads; each read loads only the newly completed."""

    def __init__(self) -> None:
        self._by_id: dict[int, FrozenTrial] = {}

    def read(self, study: optuna.Study) -> list[FrozenTrial]:
        """The study's COMPLETE trials now, by number: what `study.get_trials(states=(COMPLETE,))`
        returns (one query of ids, and one load per trial completed since the last read)."""
        backend = rdb_backend(study._storage)
        if backend is None:  # the gRPC proxy: its client caches finished trials itself
            return study.get_trials(deepcopy=False, states=_COMPLETE)
        with read_only(backend.engine).connect() as conn:  # no write lock for a read
            ids = list(conn.execute(_COMPLETE_IDS, {"study_id": study._study_id}).scalars())
        for trial_id in ids:
            if trial_id not in self._by_id:
                self._by_id[trial_id] = backend.get_trial(trial_id)
        return sorted((self._by_id[i] for i in ids), key=lambda t: t.number)


def prune_decisions(trials: Sequence[optuna.Trial], completed: CompletedTrials) -> list[bool]:
    """`trial.should_prune()` for each of `trials` (of one study, each with this epoch's report
    written), the study's completed trials read once for all of them."""
    if not trials:
        return []
    study = trials[0].study
    pruner = study.pruner
    # A wrapper (studyd's StratifiedPruner, which storage cannot import) says it reads the same.
    one_read = type(pruner) in ONE_READ_PRUNERS or getattr(pruner, "reads_completed_only", False)
    if not one_read:
        return [trial.should_prune() for trial in trials]
    view = copy.copy(study)
    view._storage = _CompletedView(study._storage, completed.read(study))  # type: ignore[assignment]
    # What `Trial.should_prune` passes the pruner: the trial with its cached reports.
    return [pruner.prune(view, trial._get_latest_trial()) for trial in trials]


class _CompletedView:
    """The study's storage, but for `get_all_trials` of COMPLETE trials: those of one read."""

    def __init__(self, storage: BaseStorage, completed: list[FrozenTrial]) -> None:
        self._storage = storage
        self._completed = completed

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        if states is None or any(s in states for s in TrialState if s != TrialState.COMPLETE):
            return self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        found = self._completed if TrialState.COMPLETE in states else []
        return copy.deepcopy(found) if deepcopy else list(found)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)
