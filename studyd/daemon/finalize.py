"""The study finaliser: seed replicates and the test score, owed once a search reaches its target.

With `repeats: {auto: true}` the replicates come in rounds (`seed_rounds`), each owed once the
last round's are settled, until the verdict is decided or `max_seeds` is reached.

Whoever settles a study's last slot — the worker that trained it, another worker, or the reaper on
behalf of a dead one — the work after it must happen exactly once. So no one does it inline: every
worker, after each slot, when idle and on its reaper tick, asks its store (`storage.final_steps`
behind `storage.worker_store`) for studies that owe a step, claims one atomically, and does it. A
claimant that dies leaves a claim whose worker row the reaper deletes, and the next worker takes
the step over.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits
from models.training import evaluate, train_model
from storage.worker_store import STORAGE_ERRORS, OwedStep, WorkerStore
from studyd.daemon.records import best_trial
from studyd.daemon.runs import replicate_seeds, replicate_targets, trial_config
from studyd.daemon.seed_rounds import enqueue_seed_round
from studyd.spec import StudySpec, validate_spec

logger = logging.getLogger(__name__)

# Writes a finished study's dashboard note: (study, spec, test score or None).
NoteWriter = Callable[[optuna.Study, StudySpec, float | None], None]
# Keeps the retrained best network (studyd.daemon.model_artifact.store_model's arguments).
ModelKeeper = Callable[
    [optuna.Study, FrozenTrial, nn.Module, ModelConfig, TrainConfig, float], object
]


@dataclass
class StudyFinalizer:
    """One worker's view: how it loads data, where it trains, and when it must stop."""

    store: WorkerStore
    worker_id: int
    load_data: Callable[[StudySpec], DatasetSplits]
    device: str = "cpu"
    stopping: Callable[[], bool] = lambda: False
    # None: no note (a store without our SQL tables, which the note's evidence reads).
    note: NoteWriter | None = None
    # None: the retrained model is not kept (a test's finaliser, a store without a data dir).
    keep_model: ModelKeeper | None = None

    def run(self, *, scoring: bool = True) -> int:
        """Do every owed step this worker can claim; returns how many it completed.

        `scoring=False` (the heartbeat thread) only opens replicates, which is quick: a test run
        trains a network and would hold up the heartbeats.
        """
        done = 0
        store = self.store
        for owed in store.owed_steps():
            if self.stopping():
                break
            if owed.step == "score" and not scoring:
                continue
            if not store.claim_step(owed, self.worker_id):
                continue  # another worker has it
            try:
                completed = self._do(owed)
            except STORAGE_ERRORS as exc:  # an outage: one line (the worker notes when it ends)
                logger.warning(
                    "study %s: %s failed (%s): given back",
                    owed.study_id,
                    owed.step,
                    type(exc).__name__,
                )
                completed = False
            if completed:
                done += 1
            else:
                store.release_step(owed.study_id, self.worker_id)
        return done

    def _do(self, owed: OwedStep) -> bool:
        spec = validate_spec(owed.spec)
        study = self.store.load_study(owed.optuna_name)
        if owed.step == "replicates":
            return self._open_replicates(owed, spec, study)
        return self._score(owed, spec, study)

    def _open_replicates(self, owed: OwedStep, spec: StudySpec, study: optuna.Study) -> bool:
        if spec.auto_repeats is not None:
            return self._seed_round(owed, spec, study)
        extra = enqueue_missing_replicates(self.store, study, spec)
        after = self.store.open_replicates(owed.study_id, self.worker_id, extra)
        if after is not None:
            logger.info("study %s: %s seed replicates open", owed.study_id, extra)
            self._note(study, spec, None)  # the search's answer, before its replicates
        return after is not None

    def _seed_round(self, owed: OwedStep, spec: StudySpec, study: optuna.Study) -> bool:
        """`repeats: {auto: true}`: one more round held for the next, or the rounds closed."""
        waiting = enqueue_seed_round(self.store, study, spec)
        if waiting:
            after = self.store.extend_replicates(owed.study_id, self.worker_id, waiting)
        else:
            after = self.store.open_replicates(owed.study_id, self.worker_id, 0)
            if after is not None:
                logger.info("study %s: seed replicates decided", owed.study_id)
        if after is not None:
            self._note(study, spec, None)  # the answer so far, with what is still undecided
        return after is not None

    def _score(self, owed: OwedStep, spec: StudySpec, study: optuna.Study) -> bool:
        fail_orphans(self.store, study)
        best = best_trial(study)
        score = seconds = None
        if best is not None:
            started = time.monotonic()  # the retraining, reported apart from the search
            data = self.load_data(spec)
            model_cfg, train_cfg = trial_config(best, spec, data)
            stop = self.stopping
            result = train_model(
                model_cfg, train_cfg, data, device=self.device, on_epoch=lambda _: stop()
            )
            if len(result.history) < train_cfg.epochs and not result.diverged:
                return False  # interrupted: given back rather than a wrong score stored
            _, score = evaluate(result.model, data.x_test, data.y_test)
            seconds = time.monotonic() - started
            self.store.set_study_attr(study, "test_trial", best.number)
            # Kept before the score is recorded: whoever reads the score finds the model.
            self._keep(study, best, result.model.net, model_cfg, train_cfg, score)
        recorded = self.store.record_score(owed.study_id, self.worker_id, score, seconds)
        if not recorded:
            logger.warning("study %s: scored after losing its claim: dropped", owed.study_id)
            return True  # the step is not ours any more: nothing to give back
        if best is not None:
            logger.info(
                "study %s: best trial %s scores %.4f on test", owed.study_id, best.number, score
            )
        self._note(study, spec, score)
        return True

    def _keep(self, study: optuna.Study, best: FrozenTrial, net, model_cfg, train_cfg, score):
        """The retrained network into the artifact store; one that fails is logged, not retried
        (the test score stands without it, and `GET /studies/{id}/model` answers 404)."""
        if self.keep_model is None:
            return
        try:
            self.keep_model(study, best, net, model_cfg, train_cfg, score)
        except Exception as exc:  # noqa: BLE001 - the kept model is a by-product of the score
            logger.warning(
                "%s: the trained model could not be kept (%s: %s)",
                study.study_name,
                type(exc).__name__,
                exc,
            )

    def _note(self, study: optuna.Study, spec: StudySpec, score: float | None) -> None:
        """The answer on the study's dashboard page; a note that fails is logged, not retried
        (the study's result stands without it)."""
        if self.note is None:
            return
        try:
            self.note(study, spec, score)
        except Exception as exc:  # noqa: BLE001 - the note is a view of the result, not part of it
            # One line, no traceback: the usual cause is a study deleted as it ended.
            logger.warning(
                "%s: the dashboard note could not be written (%s: %s)",
                study.study_name,
                type(exc).__name__,
                exc,
            )


def enqueue_missing_replicates(store: WorkerStore, study: optuna.Study, spec: StudySpec) -> int:
    """Enqueue each replicate (`replicate_of`, `replicate_seed`) not already in the study.

    Returns how many replicates wait for a slot: the ones the target does not count yet. A
    claimant that died after enqueuing some leaves them for the next, which must neither enqueue
    them twice nor forget to count them; an extended study (`storage.study_extension`) whose
    replicates ran adds only those of the configurations that now lead and have none.
    """
    if spec.repeats == 0:
        return 0
    present = {
        (t.user_attrs.get("replicate_of"), t.user_attrs.get("replicate_seed"))
        for t in store.trials(study)
        if "replicate_of" in t.user_attrs and "retry_of" not in t.user_attrs
    }
    for trial in replicate_targets(study, spec):
        for seed in replicate_seeds(spec):
            if (trial.number, seed) not in present:
                attrs = {"replicate_of": trial.number, "replicate_seed": seed}
                store.enqueue_trial(study, trial.params, attrs)
    waiting = waiting_replicates(store, study)
    logger.info("%s: %s seed replicates to run", study.study_name, waiting)
    return waiting


def waiting_replicates(store: WorkerStore, study: optuna.Study) -> int:
    """Replicates enqueued and not yet run. The study is held at its target while they are
    enqueued, so no slot can have run one: these are exactly what the target must grow by."""
    return sum("replicate_of" in t.user_attrs for t in store.trials(study, (TrialState.WAITING,)))


def fail_orphans(store: WorkerStore, study: optuna.Study) -> None:
    """FAIL the trials still RUNNING once every slot is finished: no live worker holds them.

    `study.ask()` can create a trial and lose the database before handing it back; the reaper
    sweeps such orphans only while the study runs, so at `done` they would stay RUNNING forever.
    """
    for trial in store.trials(study, (TrialState.RUNNING,)):
        with suppress(optuna.exceptions.UpdateFinishedTrialError):
            store.fail_stored_trial(study, trial)
