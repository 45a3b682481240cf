"""Training one trial: ask, record its configs (or reuse a finished equal run), train with a
report and a pruning decision per epoch, then conclude. The steps a stack shares live here too."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from models.config import ModelConfig, TrainConfig
from models.diagnostics import regularisation_diagnostics
from models.training import EpochMetrics, TrainResult, train_model
from storage.worker_store import StudyRecord, WorkerStore
from studyd.daemon.exploring import ExploringSampler
from studyd.daemon.records import config_attrs, diagnostic_attrs, result_attrs
from studyd.daemon.runs import trial_config
from studyd.daemon.worker.outcomes import Outcomes
from studyd.daemon.worker.repeats import reused
from studyd.daemon.worker.state import DB_ERRORS, OutageLog, ServedStudy, Stop, WorkerState
from studyd.spec import StudySpec

logger = logging.getLogger(__name__)

# Proposals in a row that repeated a run the study has, after which each next proposal is drawn
# at random (`exploring.ExploringSampler`) until a new run counts.
EXPLORE_AFTER_REPEATS = 2
# Stochastic passes for the MC-dropout diagnostics of each trial (on the validation split).
MC_PASSES = 20


@dataclass
class TrialPlan:
    """What a trial trains, and the outcome of a finished equal run it reuses instead (if any)."""

    model: ModelConfig
    train: TrainConfig
    reused: dict[str, Any] | None = None


@dataclass
class Trained:
    """A trial's training: its result, and whether the pruner stopped it."""

    result: TrainResult
    pruned: bool


class TrialRunner:
    """One worker's trial steps, alone (`run`) or for a stack (`stack.StackRunner`)."""

    def __init__(self, state: WorkerState, outcomes: Outcomes) -> None:
        self.state = state
        self.outcomes = outcomes
        # Epoch reports the database did not take (an outage), by trial id: written with the
        # next report, and before the trial is told; a curve is never cut silently.
        self.unreported: dict[int, list[tuple[optuna.Trial, int, float]]] = {}
        self.report_outage = OutageLog("epoch reports")

    def run(self, record: StudyRecord, served: ServedStudy) -> None:
        """One trial on the worker's own slot, from ask to a settled slot."""
        study, outcomes = served.study, self.outcomes
        trial = self.begin(record, served, self.state.worker_id)
        try:
            plan = self.configure([trial], served)[0]
            pruned, outcome = False, plan.reused
            if outcome is None:
                trained = self.train(trial, served, plan)
                pruned = trained.pruned
                self.write_unreported([trial])
                outcome = self.outcome(trained, served, plan.train)
        except Stop:
            outcomes.abandon(record, study, trial)
            return
        except optuna.exceptions.UpdateFinishedTrialError:
            # The reaper failed this trial (we looked dead) and settled its slot: drop it.
            logger.warning("trial %s was failed by the reaper: result dropped", trial.number)
            return
        except DB_ERRORS:
            # The database, not the spec: once it answers, FAIL the trial with one retry of its
            # params, then the loop gives the slot back. Left RUNNING, the reaper would miss it
            # once the study is done.
            outcomes.fail_for_retry(study, trial)
            raise
        except Exception as exc:  # noqa: BLE001 - the spec cannot train: fail the study, readably
            if outcomes.vanished(record, exc):
                raise  # the study is gone, not wrong: `SlotServer.serve` drops the trial
            message = f"trial {trial.number} could not train: {type(exc).__name__}: {exc}"
            logger.exception("study %s: %s", record.id, message)
            outcomes.tell(study, trial, state=TrialState.FAIL)
            outcomes.fail_study(record, message)
            return
        duplicate = plan.reused is not None and is_duplicate(trial)
        try:
            outcomes.conclude(
                record, served, trial, outcome, pruned, self.state.worker_id, duplicate=duplicate
            )
        except DB_ERRORS:
            # As mid-training (and as a stack member's): FAILed with its retry before the loop
            # gives the slot back, so that the slot's next ask takes the retry.
            outcomes.fail_for_retry(study, trial)
            raise

    def begin(self, record: StudyRecord, served: ServedStudy, lease: int | None) -> optuna.Trial:
        """Ask for a trial and record it on the slot's lease (a lost database FAILs it, retried)."""
        study, store = served.study, self.state.store
        trial = store.ask(study)
        if self.outcomes.repeats.get(record.id, 0) >= EXPLORE_AFTER_REPEATS and isinstance(
            study.sampler, ExploringSampler
        ):
            study.sampler.explore(trial.number)  # its params are suggested in `configure`
        try:
            store.heartbeat(
                lease, record.id, trial_id=store.trial_id(trial), trial_number=trial.number
            )
        except DB_ERRORS:
            self.outcomes.fail_for_retry(study, trial)
            raise
        return trial

    def configure(self, trials: list[optuna.Trial], served: ServedStudy) -> list[TrialPlan]:
        """Each trial's plan, their config attributes recorded in one transaction."""
        self.unreported.clear()  # a previous trial's, had it ended without telling
        spec, state, store = served.spec, self.state, self.state.store
        where = {"device": state.device, "worker_id": state.worker_id, "host": state.host}
        configs = [trial_config(trial, spec, served.data) for trial in trials]
        attrs = [config_attrs(m, t, spec.dataset.name, **where) for m, t in configs]
        store.set_user_attrs(list(zip(trials, attrs, strict=True)))
        plans = []
        for trial, (model_cfg, train_cfg), recorded in zip(trials, configs, attrs, strict=True):
            earlier = store.first_with_attr(
                served.study, "run_key", recorded["run_key"], before=trial.number
            )
            # The same canonical config and seed already finished: its result is this one's.
            taken = None if earlier is None else reused(earlier.user_attrs, earlier.number)
            plans.append(TrialPlan(model_cfg, train_cfg, taken))
        return plans

    def outcome(
        self, trained: Trained, served: ServedStudy, train_cfg: TrainConfig
    ) -> dict[str, Any]:
        """The attributes a trained trial records: its results, and unless pruned its
        regularisation diagnostics."""
        outcome = result_attrs(trained.result)
        if not trained.pruned:
            data = served.data
            diagnostics = regularisation_diagnostics(
                trained.result.model,
                data.x_val,
                data.y_val,
                mc_passes=MC_PASSES,
                seed=train_cfg.seed,
            )
            outcome |= diagnostic_attrs(diagnostics)
        return outcome

    def train(self, trial: optuna.Trial, served: ServedStudy, plan: TrialPlan) -> Trained:
        """Train with per-epoch reports. Raises `Stop` when told to stop."""
        pruned = False
        spec, train_cfg = served.spec, plan.train

        def on_epoch(m: EpochMetrics) -> bool:
            nonlocal pruned
            if self.state.interrupted():
                return True
            self.report([(trial, m)], spec)
            pruned = self.should_prune([(trial, train_cfg, m)], served)[0]
            return pruned

        device = self.state.device
        result = train_model(
            plan.model,
            train_cfg,
            served.data,
            device=device,
            on_epoch=on_epoch,
            interrupt=self.state.interrupted,
        )
        if self.state.interrupted() and not pruned and len(result.history) < train_cfg.epochs:
            raise Stop()
        return Trained(result, pruned)

    def report(self, reports: list[tuple[optuna.Trial, EpochMetrics]], spec: StudySpec) -> None:
        """Report each trial's epoch metric, a stack's in one transaction (`report_many`)."""
        if spec.search.objectives:
            return  # multi-objective: Optuna takes no intermediate values
        metric, store = spec.search.metric, self.state.store
        fresh = [(t, m.epoch, getattr(m, metric)) for t, m in reports]
        fresh = [(t, step, v) for t, step, v in fresh if math.isfinite(v)]
        ids = [store.trial_id(t) for t, _, _ in fresh]
        pending = [item for i in ids for item in self.unreported.pop(i, [])] + fresh
        try:
            store.report(pending)
        except DB_ERRORS as exc:
            # Kept, and written once the database answers: the training goes on meanwhile.
            self.report_outage.failed(exc)
            for item in pending:
                self.unreported.setdefault(store.trial_id(item[0]), []).append(item)
            return
        self.report_outage.answered()

    def write_unreported(self, trials: list[optuna.Trial]) -> None:
        """Write the trials' reports an outage held back, waiting through the grace period; a
        database still down raises, and the caller fails the trials for a retry (a COMPLETE
        trial has every epoch's value)."""
        store = self.state.store
        pending = [item for t in trials for item in self.unreported.pop(store.trial_id(t), [])]
        if not pending:
            return
        try:
            self.state.patiently("writing held-back epoch reports", lambda: store.report(pending))
        except DB_ERRORS:
            for item in pending:
                self.unreported.setdefault(store.trial_id(item[0]), []).append(item)
            raise
        logger.info("%s held-back epoch report(s) written", len(pending))
        self.report_outage.answered()

    def should_prune(
        self,
        judged: list[tuple[optuna.Trial, TrainConfig, EpochMetrics]],
        served: ServedStudy,
    ) -> list[bool]:
        """For each (trial, its training, its epoch `m`): True when the pruner stops the trial
        after epoch `m` (never after its last epoch). The study's completed trials are read once
        for all of them (`prune_decisions`); a stack's epoch is one call."""
        spec = served.spec
        # After the last epoch there is nothing left to save: the trial is complete.
        asked = [
            i
            for i, (trial, train_cfg, m) in enumerate(judged)
            if m.epoch + 1 < train_cfg.epochs and _can_prune(self.state.store, trial, spec)
        ]
        decisions = [False] * len(judged)
        if not asked:
            return decisions
        try:
            pruned = self.state.store.prune_decisions(
                [judged[i][0] for i in asked], served.completed
            )
        except DB_ERRORS:
            numbers = [judged[i][0].number for i in asked]
            epoch = judged[asked[0]][2].epoch
            logger.warning("trials %s: epoch %s could not be judged", numbers, epoch)
            return decisions
        for i, verdict in zip(asked, pruned, strict=True):
            decisions[i] = verdict
        return decisions


def is_duplicate(trial: optuna.Trial) -> bool:
    """A reused run that does not count towards the target: a search proposal (a seed
    replicate, enqueued by the finaliser, counts whatever it reuses)."""
    return "replicate_of" not in trial.user_attrs


def _can_prune(store: WorkerStore, trial: optuna.Trial, spec: StudySpec) -> bool:
    # A seed replicate is evidence for the verdict: it always runs to the end.
    replicate = store.has_user_attr(trial, "replicate_of")
    return not spec.search.objectives and spec.search.pruner.name != "none" and not replicate
