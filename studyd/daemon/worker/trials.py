"""The one trial path: the claimed slots of one study (a lone trial is a stack of one) → ask a
trial per slot → record its configs (or reuse a finished equal run) → train, reporting each epoch
and asking the pruner → a `TrialResult` per slot, which `slot_end` ends. One error ladder:
whatever interrupts the path ends every slot it has not ended yet with what interrupted it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits
from models.training import EpochMetrics, TrainResult
from storage.worker_store import StudyRecord
from studyd.daemon.config_constraints import UntrainedInfeasible
from studyd.daemon.training import TrialPlan
from studyd.daemon.worker.deleted import vanished
from studyd.daemon.worker.repeats import Repeats, is_duplicate, reused
from studyd.daemon.worker.results import Claim, Ending, TrialResult
from studyd.daemon.worker.slot_end import SlotEnds
from studyd.daemon.worker.state import DB_ERRORS, OutageLog, ServedStudy, Stop, WorkerState
from studyd.spec import StudySpec

logger = logging.getLogger(__name__)


class Trainer(Protocol):
    """What trials train and record (`studyd.daemon.training.TorchTrainer`; unit tests stub its
    `train` and `outcome`)."""

    def plan(
        self, trial: optuna.Trial, spec: StudySpec, data: DatasetSplits, **where: Any
    ) -> TrialPlan: ...

    def untrained_infeasible(
        self, spec: StudySpec, model: ModelConfig
    ) -> UntrainedInfeasible | None: ...

    def stack_key(self, model: ModelConfig, train: TrainConfig) -> Hashable | None: ...

    def train(
        self,
        models: Sequence[ModelConfig],
        trains: Sequence[TrainConfig],
        data: DatasetSplits,
        *,
        stacked: bool,
        on_epoch: Callable[[list[EpochMetrics | None]], list[bool]],
        interrupt: Callable[[], bool],
    ) -> list[TrainResult]: ...

    def outcome(
        self, result: TrainResult, pruned: bool, data: DatasetSplits, seed: int
    ) -> dict[str, Any]: ...

    def objective_values(self, spec: StudySpec, attrs: dict[str, Any]) -> list[float] | None: ...

    def constraint_values(self, spec: StudySpec, attrs: dict[str, Any]) -> dict[str, float]: ...

    def infeasible_mark(self, violations: dict[str, float]) -> dict[str, str]: ...


@dataclass
class Member:
    """One claimed slot of a stack, the trial asked for it and what it trains."""

    claim: Claim
    trial: optuna.Trial
    model: ModelConfig
    train: TrainConfig
    reused: dict[str, Any] | None = None  # a finished equal run's outcome, taken instead


class TrialPath:
    """One worker's trials: `run` takes a slot's claims from ask to ended slots."""

    def __init__(
        self, state: WorkerState, ends: SlotEnds, repeats: Repeats, trainer: Trainer
    ) -> None:
        self.state = state
        self.ends = ends
        self.repeats = repeats
        self.trainer = trainer
        # Epoch reports the database did not take (an outage), by trial id: written with the
        # next report, and before the trial is told; a curve is never cut silently.
        self.unreported: dict[int, list[tuple[optuna.Trial, int, float]]] = {}
        self.report_outage = OutageLog("epoch reports")

    def run(self, claims: list[Claim], served: ServedStudy, *, stacked: bool) -> bool:
        """Ask, train and end each claimed slot; `stacked=False` trains the (one) trial alone.
        True when the storage failed (the claim loop backs off)."""
        trials: list[optuna.Trial] = []
        ended: set[int] = set()  # indices into `claims` whose slot is ended
        try:
            for claim in claims:
                trials.append(self.begin(claim, served))
            members = self.configure(claims, trials, served)
            for done in self._train_in_turn(members, served, stacked):
                self.write_unreported([r.trial for _, r in done if r.trial is not None])
                self.ends.end_trained([r for _, r in done], served)
                ended.update(i for i, _ in done)
        except Exception as exc:
            what = (
                f"trial {trials[0].number}" if len(claims) == 1 and trials else "a batch of trials"
            )
            ending, why = self._what_interrupted(exc, claims[0].record, what)
            left = [
                TrialResult(c, trials[i] if i < len(trials) else None, ending)
                for i, c in enumerate(claims)
                if i not in ended
            ]
            self.ends.end_interrupted(left, served, why)
            return ending is Ending.STORAGE
        return False

    def _what_interrupted(
        self, exc: Exception, record: StudyRecord, what: str
    ) -> tuple[Ending, str]:
        """The ending of the slots `exc` interrupted, and why (the study's error, if it fails)."""
        if isinstance(exc, Stop):
            return Ending.STOPPED, ""
        if isinstance(exc, DB_ERRORS):
            return Ending.STORAGE, ""
        if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
            return Ending.REAPED, ""  # every lease row is heartbeated together: all reaped
        if vanished(self.state, record, exc):
            raise exc  # the study is gone, not wrong: `SlotServer.serve` drops its trials
        why = f"{what} could not train: {type(exc).__name__}: {exc}"
        logger.error("study %s: %s", record.id, why, exc_info=exc)
        return Ending.UNTRAINABLE, why

    def begin(self, claim: Claim, served: ServedStudy) -> optuna.Trial:
        """Ask for a trial and record it on the slot's lease (a lost database FAILs it, retried)."""
        store, study = self.state.store, served.study
        trial = store.ask(study)
        self.repeats.before_training(claim.record.id, study, trial)
        try:
            # Patient: an outage that starts now is waited out, not a trial failed unborn.
            self.state.patiently(
                "recording the trial on its lease",
                store.heartbeat,
                self.state.lease_row(claim.lease),
                claim.record.id,
                trial_id=store.trial_id(trial),
                trial_number=trial.number,
            )
        except DB_ERRORS:
            self.ends.fail_for_retry(study, trial)
            raise
        return trial

    def configure(
        self, claims: list[Claim], trials: list[optuna.Trial], served: ServedStudy
    ) -> list[Member]:
        """Each trial's configs, their attributes recorded in one transaction, and the outcome
        of a finished equal run (same canonical config and seed) where there is one."""
        self.unreported.clear()  # a previous trial's, had it ended without telling
        state, store = self.state, self.state.store
        where = {"device": state.device, "worker_id": state.worker_id, "host": state.host}
        plans = [self.trainer.plan(t, served.spec, served.data, **where) for t in trials]
        store.set_user_attrs([(t, p.attrs) for t, p in zip(trials, plans, strict=True)])
        members = []
        for claim, trial, plan in zip(claims, trials, plans, strict=True):
            earlier = store.first_with_attr(
                served.study, "run_key", plan.attrs["run_key"], before=trial.number
            )
            taken = None if earlier is None else reused(earlier.user_attrs, earlier.number)
            members.append(Member(claim, trial, plan.model, plan.train, taken))
        return members

    def _train_in_turn(
        self, members: list[Member], served: ServedStudy, stacked: bool
    ) -> Iterator[list[tuple[int, TrialResult]]]:
        """Each member's result — reused, trained in a stack, or trained alone — yielded a group
        at a time (member index, result) as soon as that group has trained.

        The members of one claim may form several stacks (one per depth, say), trained one
        after another: each is ended before the next trains, so its results count at once (the
        study's best, time to a good answer) and the pruner judges the next stack against them.
        Trials of one claim with the same canonical run (`run_key`) train once: the others take
        its outcome with `reused_from`, as a later trial takes a finished run's.
        """
        ready: list[tuple[int, TrialResult]] = []
        groups: dict[Any, list[int]] = {}
        first_of: dict[str, int] = {}
        twins: dict[int, int] = {}
        for i, m in enumerate(members):
            if m.reused is not None:
                ready.append((i, self._result(m, m.reused, duplicate=is_duplicate(m.trial))))
                continue
            # A bound the config decides (param_count) is decided now: no epoch is trained.
            infeasible = self.trainer.untrained_infeasible(served.spec, m.model)
            if infeasible is not None:
                told = self._result(m, infeasible.attrs(), pruned=True)
                told.untrained_infeasible = infeasible.reason
                ready.append((i, told))
                continue
            run_key = m.trial.user_attrs.get("run_key")
            if run_key in first_of:
                twins[i] = first_of[run_key]
                continue
            first_of[run_key] = i
            key = self.trainer.stack_key(m.model, m.train) if stacked else None
            groups.setdefault(("alone", i) if key is None else key, []).append(i)
        if ready:
            yield ready
        for key, indices in groups.items():
            alone = isinstance(key, tuple) and key[:1] == ("alone",)
            done = self._train_group([members[i] for i in indices], served, stacked=not alone)
            done = list(zip(indices, done, strict=True))
            firsts = dict(done)
            for i, j in twins.items():
                if j in firsts:
                    taken = reused(firsts[j].attrs or {}, members[j].trial.number)
                    twin = self._result(members[i], taken, firsts[j].pruned)
                    twin.duplicate = is_duplicate(members[i].trial)
                    done.append((i, twin))
            yield done

    def _result(
        self, m: Member, attrs: dict[str, Any], pruned: bool = False, *, duplicate: bool = False
    ) -> TrialResult:
        return TrialResult(m.claim, m.trial, Ending.TRAINED, attrs, pruned, duplicate)

    def _train_group(
        self, group: list[Member], served: ServedStudy, *, stacked: bool
    ) -> list[TrialResult]:
        """One training (a stack, or one trial alone) with each trial's report and pruning
        decision per epoch. Raises `Stop` when told to stop."""
        state, spec = self.state, served.spec
        pruned = [False] * len(group)

        def on_epoch(metrics: list[EpochMetrics | None]) -> list[bool]:
            if state.interrupted():
                return [True] * len(group)
            live = [(k, m) for k, m in enumerate(metrics) if m is not None]
            self.report([(group[k].trial, m) for k, m in live], spec)
            judged = [(group[k].trial, group[k].train, m) for k, m in live]
            for (k, _), verdict in zip(live, self.should_prune(judged, served), strict=True):
                pruned[k] = verdict
            return pruned

        results = self.trainer.train(
            [m.model for m in group],
            [m.train for m in group],
            served.data,
            stacked=stacked,
            on_epoch=on_epoch,
            interrupt=state.interrupted,
        )
        for k, result in enumerate(results):
            if (
                state.interrupted()
                and not pruned[k]
                and len(result.history) < group[k].train.epochs
            ):
                raise Stop()
        outcome = self.trainer.outcome
        return [
            self._result(m, outcome(r, p, served.data, m.train.seed), p)
            for m, r, p in zip(group, results, pruned, strict=True)
        ]

    def report(self, reports: list[tuple[optuna.Trial, EpochMetrics]], spec: StudySpec) -> None:
        """Report each trial's epoch metric, a stack's in one transaction."""
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
            self._hold(pending)
            return
        self.report_outage.answered()

    def _hold(self, pending: list[tuple[optuna.Trial, int, float]]) -> None:
        for item in pending:
            self.unreported.setdefault(self.state.store.trial_id(item[0]), []).append(item)

    def write_unreported(self, trials: list[optuna.Trial]) -> None:
        """Write the trials' reports an outage held back, waiting through the grace period; a
        database still down raises, and the ladder fails the trials for a retry (a COMPLETE
        trial has every epoch's value)."""
        store = self.state.store
        pending = [item for t in trials for item in self.unreported.pop(store.trial_id(t), [])]
        if not pending:
            return
        try:
            self.state.patiently("writing held-back epoch reports", store.report, pending)
        except DB_ERRORS:
            self._hold(pending)
            raise
        logger.info("%s held-back epoch report(s) written", len(pending))
        self.report_outage.answered()

    def should_prune(
        self, judged: list[tuple[optuna.Trial, TrainConfig, EpochMetrics]], served: ServedStudy
    ) -> list[bool]:
        """For each (trial, its training, its epoch `m`): True when the pruner stops the trial
        after epoch `m` (never after its last epoch). The study's completed trials are read once
        for all of them (`storage.pruning_reads`); a stack's epoch is one call."""
        spec, store = served.spec, self.state.store
        asked = [
            i
            for i, (trial, train_cfg, m) in enumerate(judged)
            if m.epoch + 1 < train_cfg.epochs and _can_prune(store.has_user_attr, trial, spec)
        ]
        decisions = [False] * len(judged)
        if not asked:
            return decisions
        try:
            pruned = store.prune_decisions([judged[i][0] for i in asked], served.completed)
        except DB_ERRORS:
            numbers = [judged[i][0].number for i in asked]
            logger.warning("trials %s: epoch %s could not be judged", numbers, judged[0][2].epoch)
            return decisions
        for i, verdict in zip(asked, pruned, strict=True):
            decisions[i] = verdict
        return decisions


def _can_prune(
    has_user_attr: Callable[[optuna.Trial, str], bool], trial: optuna.Trial, spec: StudySpec
) -> bool:
    # A seed replicate is evidence for the verdict: it always runs to the end.
    replicate = has_user_attr(trial, "replicate_of")
    return not spec.search.objectives and spec.search.pruner.name != "none" and not replicate
