"""Training a stack of trials: K slots of one study claimed together, one trial asked per slot,
those sharing a `batch_key` trained as one stacked model (models.batched), the rest alone.

K (`--batch-trials`) is decided here too: the option, or with `auto` what the device holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from models.batched import batch_key, train_batched
from models.training import EpochMetrics
from storage.worker_store import StudyRecord
from studyd.daemon.search import stack_count, startup_counts
from studyd.daemon.worker.outcomes import Outcomes
from studyd.daemon.worker.repeats import reused
from studyd.daemon.worker.state import DB_ERRORS, ServedStudy, Stop, WorkerState
from studyd.daemon.worker.trial import Trained, TrialPlan, TrialRunner, is_duplicate
from studyd.spec import StudySpec

logger = logging.getLogger(__name__)

# `--batch-trials auto`: K on a CPU (K = 8 gave ≥ 2× the trials/hour of K = 1 on mnist1d with
# one thread, bench/throughput), and the most on a GPU, where free memory decides below that.
AUTO_CPU_TRIALS = 8
AUTO_MAX_TRIALS = 32
# A training step's fixed cost (Python, dispatch, optimizer) in per-example FLOPs of the
# network: a stack pays it once for K trials. Fitted on mnist1d (bench/throughput, 1 thread):
# K = 8 at 2 × 128 trained 1.6× the trials/hour of K = 1, (c + F) / (c / 8 + F) = 1.6 → c ≈ 17k;
# K = 8 padded, depth 1–3 and width 4–128 (log), 2.2× → c ≈ 36k. The larger: the padded case is
# the one this decides. A GPU's launch overhead is larger still, so this errs towards small K.
STEP_OVERHEAD = 36_000.0


@dataclass
class Claim:
    """A slot of the study and the worker row holding it (the worker's own, or an extra lease)."""

    record: StudyRecord
    lease: int | None


@dataclass
class StackMember:
    """One claimed slot of a stack and the trial asked for it."""

    claim: Claim
    trial: optuna.Trial
    plan: TrialPlan


@dataclass
class MemberOutcome:
    """What a member records: trained, or reused from an equal run; and whether it was pruned."""

    attrs: dict[str, Any]
    pruned: bool
    duplicate: bool = False


class StackRunner:
    """One worker's batches: ask, train, tell and settle each claimed slot, errors per batch as
    `TrialRunner.run` handles them per trial."""

    def __init__(self, state: WorkerState, outcomes: Outcomes, trials: TrialRunner) -> None:
        self.state = state
        self.outcomes = outcomes
        self.trials = trials

    def run(self, claims: list[Claim], served: ServedStudy) -> None:
        study, outcomes = served.study, self.outcomes
        begun: list[tuple[Claim, optuna.Trial]] = []
        settled: set[int] = set()  # members told and settled (indices into claims and begun)
        try:
            for claim in claims:
                begun.append((claim, self.trials.begin(claim.record, served, claim.lease)))
            plans = self.trials.configure([trial for _, trial in begun], served)
            members = [StackMember(c, t, p) for (c, t), p in zip(begun, plans, strict=True)]
            for done in self._train_in_turn(members, served):
                self.trials.write_unreported([members[i].trial for i, _ in done])
                self._settle([(members[i], end) for i, end in done], served)
                settled.update(i for i, _ in done)
        except Stop:
            for i, (claim, trial) in enumerate(begun):
                if i not in settled:
                    outcomes.abandon(claim.record, study, trial, claim.lease)
            for claim in claims[len(begun) :]:
                outcomes.release(claim.record, claim.lease)
            return
        except DB_ERRORS:
            for i, (_, trial) in enumerate(begun):
                if i not in settled:
                    outcomes.fail_for_retry(study, trial)
            for i, claim in enumerate(claims):
                if i not in settled:
                    outcomes.give_back_after_error(claim.record, claim.lease)
            return
        except optuna.exceptions.UpdateFinishedTrialError:
            # Every lease row is heartbeated together: the reaper took them all (we looked dead).
            logger.warning("trials %s were failed by the reaper", [t.number for _, t in begun])
            return
        except Exception as exc:  # noqa: BLE001 - the spec cannot train: fail the study, readably
            if outcomes.vanished(claims[0].record, exc):
                raise  # the study is gone, not wrong: `SlotServer.serve` drops the trials
            message = f"a batch of trials could not train: {type(exc).__name__}: {exc}"
            logger.exception("study %s: %s", claims[0].record.id, message)
            for i, (_, trial) in enumerate(begun):
                if i not in settled:
                    outcomes.tell(study, trial, state=TrialState.FAIL)
            for i, claim in enumerate(claims):
                if i > 0 and i not in settled:
                    outcomes.release(claim.record, claim.lease)
            outcomes.fail_study(claims[0].record, message)
            return

    def _settle(self, done: list[tuple[StackMember, MemberOutcome]], served: ServedStudy) -> None:
        """Record, tell and settle trained members: their attributes in one transaction, then
        each trial's tell and slot (a database error there gives that slot back)."""
        outcomes = self.outcomes
        recorded = outcomes.record_all([(m.trial, end.attrs) for m, end in done])
        for member, end in done:
            record, lease = member.claim.record, member.claim.lease
            try:
                outcomes.conclude(
                    record,
                    served,
                    member.trial,
                    end.attrs,
                    end.pruned,
                    lease,
                    recorded=recorded,
                    duplicate=end.duplicate,
                )
            except DB_ERRORS:
                logger.exception("study %s: the database failed settling a trial", record.id)
                outcomes.fail_then_give_back(record, served.study, member.trial, lease)

    def _train_in_turn(
        self, members: list[StackMember], served: ServedStudy
    ) -> Iterator[list[tuple[int, MemberOutcome]]]:
        """Each member's outcome — reused, trained in a stack, or trained alone — yielded a group
        at a time (member index, outcome) as soon as that group has trained.

        The members of one claim may form several stacks (one per depth, say), trained one
        after another: each is told before the next trains, so its results count at once (the
        study's best, time to a good answer) and the pruner judges the next stack against them.
        Trials of one batch with the same canonical run (`run_key`) train once: the others take
        its outcome with `reused_from`, as a later trial takes a finished run's.
        """
        ready: list[tuple[int, MemberOutcome]] = []
        groups: dict[Any, list[int]] = {}
        first_of: dict[str, int] = {}
        twins: dict[int, int] = {}
        for i, member in enumerate(members):
            plan = member.plan
            if plan.reused is not None:
                ready.append((i, MemberOutcome(plan.reused, False, is_duplicate(member.trial))))
                continue
            run_key = member.trial.user_attrs.get("run_key")
            if run_key in first_of:
                twins[i] = first_of[run_key]
                continue
            first_of[run_key] = i
            key = batch_key(plan.model, plan.train)
            groups.setdefault(("alone", i) if key is None else key, []).append(i)
        if ready:
            yield ready
        for indices in groups.values():
            trained = self._train_group([members[i] for i in indices], served)
            done: list[tuple[int, MemberOutcome]] = []
            for i, one in zip(indices, trained, strict=True):
                attrs = self.trials.outcome(one, served, members[i].plan.train)
                done.append((i, MemberOutcome(attrs, one.pruned)))
            firsts = dict(done)
            for i, j in twins.items():
                if j in firsts:
                    taken = reused(firsts[j].attrs, members[j].trial.number)
                    done.append(
                        (i, MemberOutcome(taken, firsts[j].pruned, is_duplicate(members[i].trial)))
                    )
            yield done

    def _train_group(self, group: list[StackMember], served: ServedStudy) -> list[Trained]:
        """One stack (`train_batched`) with each trial's report and pruning decision per epoch."""
        spec, state = served.spec, self.state
        # A lone batchable trial trains as a stack of one: its epochs cost ≈ 10–25% less than
        # `train_model`'s (one flat Adam step, no Fabric) and its result is the same to rounding,
        # as every stacked trial's is. Only a variant that cannot stack trains alone.
        if len(group) == 1 and batch_key(group[0].plan.model, group[0].plan.train) is None:
            return [self.trials.train(group[0].trial, served, group[0].plan)]
        pruned = [False] * len(group)

        def on_epoch(_epoch: int, metrics: list[EpochMetrics | None]) -> list[bool]:
            if state.interrupted():
                return [True] * len(group)
            live = [(k, m) for k, m in enumerate(metrics) if m is not None]
            self.trials.report([(group[k].trial, m) for k, m in live], spec)
            judged = [(group[k].trial, group[k].plan.train, m) for k, m in live]
            for (k, _), verdict in zip(live, self.trials.should_prune(judged, served), strict=True):
                pruned[k] = verdict
            return pruned

        results = train_batched(
            [m.plan.model for m in group],
            [m.plan.train for m in group],
            served.data,
            device=state.device,
            on_epoch=on_epoch,
            interrupt=state.interrupted,
        )
        for k, result in enumerate(results):
            epochs = group[k].plan.train.epochs
            if state.interrupted() and not pruned[k] and len(result.history) < epochs:
                raise Stop()
        return [Trained(r, p) for r, p in zip(results, pruned, strict=True)]


def trials_per_slot(
    batch_trials: int | str,
    served: ServedStudy,
    device: str,
    finished: int = 0,
    in_flight: int = 0,
) -> int:
    """K: the option, or with `auto` what the device's free memory holds (at most 32) when
    the spec's trials would form stacks of two or more, cut to the K whose padding to the
    widest trial costs least per trial (`padded_trials`); 1 when they would mostly train alone (a
    searched depth, say), since claimed slots then wait in line instead of going to other
    workers. With `auto` a stack also ends where the search starts to use results (`ramped`;
    `in_flight`: the study's trials other workers are training)."""
    if batch_trials != "auto":
        return max(int(batch_trials), 1)
    return ramped(_auto_trials(served, device), finished, startup_counts(served.spec), in_flight)


def ramped(k: int, finished: int, startups: tuple[int, ...], in_flight: int = 0) -> int:
    """At most K, at most one more trial than the study has finished, and no more than the
    trials left before the next of its `startups` (`search.startup_counts`: 5 for the median
    pruner, 10 for TPE) once the `in_flight` trials of other workers are counted: alone, stacks
    of 1, 2, 2, 5, then K. Another worker's trials in flight were asked before the count too:
    without them, two workers each asking a stack of 5 at 5 finished asked 15 trials at random.

    A stack's trials are asked together and all finish at its end, and the pruner judges a trial
    only against finished ones: growing from one trial gives the study its first answer after a
    single trial's time. A stack that straddles a start-up count is asked as if the count had not
    been reached: its later trials are random draws for TPE (a ramp of 1, 2, 4, 8 drew 15 of 20
    at random where one at a time draws 10), or unpruned for the median pruner.
    """
    ahead = [count - finished - in_flight for count in startups if count > finished]
    return max(1, min([k, finished + 1, *ahead]))


def _auto_trials(served: ServedStudy, device: str) -> int:
    """`auto`'s K for a study under way (before `ramped`)."""
    data, spec = served.data, served.spec
    if 2 * stack_count(spec) > _auto_cap(device):
        return 1
    k = auto_batch_trials(
        device,
        data.input_dim,
        _dim_max(spec.model.width),
        _dim_max(spec.model.depth),
        data.num_classes,
        _dim_max(spec.training.batch_size),
    )
    return padded_trials(k, spec, data.input_dim, data.num_classes)


def padded_trials(k: int, spec: StudySpec, input_dim: int, classes: int) -> int:
    """The K ≤ k with the least expected cost per trial of a stack padded to its widest trial:
    STEP_OVERHEAD / K + E[flops(max of K widths)], flops(w) = in·w + (depth − 1)·w² + w·classes
    per example at the spec's middle depth, over its width distribution."""
    widths = _width_grid(spec)
    if len(set(widths)) == 1:
        return k
    depth = _dim_mean(spec.model.depth)
    flops = [input_dim * w + (depth - 1) * w * w + w * classes for w in widths]
    n = len(flops)

    def cost(size: int) -> float:
        # E[max of `size` draws] over the sorted grid: P(max is the j-th) = ((j+1)/n)^K − (j/n)^K.
        widest = sum(f * (((j + 1) / n) ** size - (j / n) ** size) for j, f in enumerate(flops))
        return STEP_OVERHEAD / size + widest

    return min(range(1, k + 1), key=cost)


def _dim_mean(dim: Any) -> float:
    """A `Dim`'s middle value: its value, the mean of its choices or of its range's ends."""
    if dim.value is not None:
        return float(dim.value)
    if dim.choices:
        return sum(dim.choices) / len(dim.choices)
    return (dim.low + dim.high) / 2


def _width_grid(spec: StudySpec, points: int = 64) -> list[float]:
    """Equally likely widths of the spec (quantiles of its range, or its choices), ascending."""
    dim = spec.model.width
    if dim.value is not None:
        return [dim.value]
    if dim.choices:
        return sorted(dim.choices)
    assert dim.low is not None and dim.high is not None
    qs = [(i + 0.5) / points for i in range(points)]
    if spec.model.log:
        return [dim.low * (dim.high / dim.low) ** q for q in qs]
    return [dim.low + (dim.high - dim.low) * q for q in qs]


def auto_batch_trials(
    device: str, input_dim: int, width: int, depth: int, classes: int, batch_size: int
) -> int:
    """K for `--batch-trials auto`: AUTO_CPU_TRIALS on a CPU; on a GPU as many trials as half its
    free memory holds, at most AUTO_MAX_TRIALS. Per trial (float32): weights, gradient and two
    Adam moments (4 × parameters) plus a batch's activations kept for backward (≈ 3 × B × width
    × depth)."""
    params = input_dim * width + (depth - 1) * width * width + width * classes
    per_trial = 4 * (4 * params + 3 * batch_size * width * depth)
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, min(_auto_cap(device), int(0.5 * free) // per_trial))


def _auto_cap(device: str) -> int:
    """The most trials `auto` stacks on `device`."""
    return AUTO_MAX_TRIALS if device.startswith("cuda") else AUTO_CPU_TRIALS


def _dim_max(dim: Any) -> int:
    """The largest value a spec `Dim` can take."""
    return int(max(x for x in (dim.value, dim.high, *(dim.choices or ())) if x is not None))
