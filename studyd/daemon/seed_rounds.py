"""`repeats: {auto: true, max_seeds: N}`: the finaliser's rounds of seed replicates.

Each time the held study has settled every slot, the finaliser enqueues one round and extends
the target by it (`WorkerStore.extend_replicates`), the study staying held for the next; a round
that adds nothing closes the replicates (`open_replicates(.., 0)`) and the score is owed.

- The first round: the search's chosen configurations (`runs.replicate_targets`) on the first
  `FIRST_ROUND_SEEDS` seeds, as a fixed `repeats:` would.
- A study extended after its rounds (`storage.study_extension`): the configurations that now lead
  and have no settled replicate get the first round's seeds, before any further round.
- Every later round: `analysis.auto_repeats.plan_more_seeds` over the verdict's records (the same
  trials the summary counts) names the leader and the rivals still undecided; each gets the next
  seed. None undecided, or `max_seeds` seeds offered, and the rounds end.

A claimant that dies mid-round leaves some of the round enqueued (WAITING): the next plans the
same round from the same settled trials (the next seed follows the settled replicates' highest),
enqueues only what is missing, and extends the target by every replicate now waiting.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage.trial_record import REPLICATE_ATTR
from storage.worker_store import WorkerStore
from studyd.analysis.auto_repeats import plan_more_seeds
from studyd.analysis.counted import candidates
from studyd.analysis.evidence import counted_records
from studyd.daemon.records import is_feasible
from studyd.daemon.runs import replicate_seeds, replicate_targets
from studyd.spec import StudySpec

logger = logging.getLogger(__name__)

SEED_ATTR = "replicate_seed"


def enqueue_seed_round(store: WorkerStore, study: optuna.Study, spec: StudySpec) -> int:
    """Enqueue this round's replicates; how many the round waits for (0: the rounds are over)."""
    trials = store.trials(study)
    replicates = [t for t in trials if REPLICATE_ATTR in t.user_attrs]
    wanted = _round(study, spec, trials, replicates)
    present = {(t.user_attrs[REPLICATE_ATTR], t.user_attrs.get(SEED_ATTR)) for t in replicates}
    added = 0
    for trial, seed in wanted:
        if (trial.number, seed) not in present:
            attrs = {REPLICATE_ATTR: trial.number, SEED_ATTR: seed}
            store.enqueue_trial(study, trial.params, attrs)
            added += 1
    waiting = sum(t.state == TrialState.WAITING for t in replicates) + added
    logger.info("%s: a round of %s seed replicates", study.study_name, waiting)
    return waiting


def _round(
    study: optuna.Study,
    spec: StudySpec,
    trials: list[FrozenTrial],
    replicates: list[FrozenTrial],
) -> list[tuple[FrozenTrial, int]]:
    """(search trial to replicate, seed) for each replicate this round wants."""
    auto = spec.auto_repeats
    assert auto is not None
    if not any(t.state == TrialState.COMPLETE for t in replicates):
        return [(t, s) for t in replicate_targets(study, spec) for s in replicate_seeds(spec)]
    # Settled, not merely enqueued: a claimant that died mid-round left some of it waiting.
    replicated = {t.user_attrs[REPLICATE_ATTR] for t in replicates if t.state.is_finished()}
    fresh = [t for t in replicate_targets(study, spec) if t.number not in replicated]
    if fresh:  # an extension's new leaders: paired with the rivals on the first seeds
        return [(t, s) for t in fresh for s in replicate_seeds(spec)]
    settled = [int(t.user_attrs[SEED_ATTR]) for t in replicates if t.state.is_finished()]
    seed = max(settled) + 1
    if seed > spec.training.seed + auto.max_seeds:
        return []  # every seed offered: a config that keeps failing must not loop forever
    plan = plan_more_seeds(
        summary_records(trials),
        direction=spec.search.directions()[0],
        margin=auto.margin,
        max_seeds=auto.max_seeds,
    )
    by_config = _replicated_trials(trials, replicates)
    return [(by_config[c], seed) for c in plan.configs if c in by_config]


def summary_records(trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """The verdict's records of the trials the summary counts (`analysis.evidence`)."""
    found = [
        {
            "number": t.number,
            "values": t.values,
            "params": t.params,
            "user_attrs": t.user_attrs,
            "feasible": is_feasible(t),
        }
        for t in trials
        if t.state == TrialState.COMPLETE and t.values and math.isfinite(t.values[0])
    ]
    return counted_records(candidates(found))


def _replicated_trials(
    trials: list[FrozenTrial], replicates: list[FrozenTrial]
) -> dict[str, FrozenTrial]:
    """config_key → the search trial its replicates repeat (the lowest, should there be two)."""
    by_number = {t.number: t for t in trials}
    found: dict[str, FrozenTrial] = {}
    for rep in sorted(replicates, key=lambda t: t.user_attrs[REPLICATE_ATTR]):
        key = rep.user_attrs.get("config_key")
        original = by_number.get(rep.user_attrs[REPLICATE_ATTR])
        if key and original is not None:
            found.setdefault(key, original)
    return found
