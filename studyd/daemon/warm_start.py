"""Warm start: a new study begins with earlier studies' finished trials (`search.warm_start`).

Optuna's samplers learn from every finished trial a study holds, so trials added with
`Study.add_trials` before the first ask steer the first suggestions (TPE's startup trials are
counted from them too). A trial is carried over only when its result means the same thing here:
- the source study has the same dataset, the same objectives and directions (and model family);
- a parameter both specs fix has one value in both (else the study is refused: epochs 2 and
  epochs 5 measure different things);
- each of its parameters lies inside this spec's space, and is re-declared with this space's
  distribution (a categorical with other choices would make Optuna refuse this study's own
  trials later); a parameter this spec fixes must have had that value, and one every trial sets
  that the source fixed but this spec searches takes the source's fixed value;
- it is a search trial: seed replicates, reused results and repeats are the same run again.
Carried trials keep their values, curves (pruning compares against them) and user attributes
(so a run this study proposes again is answered from its known result), plus `warm_start_from`.
They do not count towards `search.n_trials`: the study still trains that many new runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from storage.queue import StudyNotFound, StudyRecord
from studyd.spec import SpecError, StudySpec, validate_spec
from studyd.spec.parameters import Param, search_params

FIELD = "search.warm_start"
# Parameters every trial sets (the rest depend on its variant and placement).
UNCONDITIONAL = frozenset(
    ("depth", "width", "activation", "variant", "epochs", "batch_size", "optimizer", "lr")
    + ("weight_decay",)
)
# A copy of a run the study already has: nothing new for the sampler.
_NOT_SEARCH = ("replicate_of", "reused_from", "duplicate_of")


class _Declared:
    """Stands in for an Optuna trial: records the distribution `Param.suggest` asks for."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> BaseDistribution:
        return CategoricalDistribution(choices)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False):
        return IntDistribution(low, high, step=step, log=log)

    def suggest_float(self, name: str, low: float, high: float, step=None, log: bool = False):
        return FloatDistribution(low, high, step=step, log=log)


def distribution(param: Param) -> BaseDistribution:
    """The distribution the worker's `trial.suggest_*` declares for `param` (not fixed)."""
    return param.suggest(_Declared())


@dataclass(frozen=True)
class WarmStart:
    """Trials to add before the first ask, and what was left out of each source study."""

    trials: list[FrozenTrial]
    skipped: dict[int, int]  # source study id → finished search trials outside this space


def _refuse(message: str) -> SpecError:
    return SpecError(f"{FIELD}: {message}", [{"loc": FIELD, "msg": message}])


def _check_source(study_id: int, source: StudySpec, spec: StudySpec) -> None:
    if source.dataset.model_dump(mode="json") != spec.dataset.model_dump(mode="json"):
        raise _refuse(
            f"study {study_id} ran on another dataset ({source.dataset.name}); warm start takes "
            "trials of the same dataset only"
        )
    ours = (spec.search.objective_names(), spec.search.directions())
    if (source.search.objective_names(), source.search.directions()) != ours:
        raise _refuse(
            f"study {study_id} optimised {', '.join(source.search.objective_names())}; this "
            f"spec optimises {', '.join(ours[0])}: their values do not compare"
        )
    if getattr(source.model, "family", None) != getattr(spec.model, "family", None):
        raise _refuse(f"study {study_id} trained another model family")
    theirs, space = search_params(source), search_params(spec)
    for name, param in space.items():
        other = theirs.get(name)
        both_fixed = param.fixed and other is not None and other.fixed
        if both_fixed and other.fixed_value() != param.fixed_value():
            raise _refuse(
                f"study {study_id} fixed {param.path} to {other.fixed_value()!r}, this spec "
                f"to {param.fixed_value()!r}: its values do not compare"
            )


def carried_params(
    trial: FrozenTrial, source: dict[str, Param], space: dict[str, Param]
) -> tuple[dict[str, Any], dict[str, BaseDistribution]] | None:
    """The trial's params re-declared in `space`; None when one falls outside it."""
    values = dict(trial.params)
    for name in UNCONDITIONAL & source.keys():  # what the source fixed was a value all the same
        if source[name].fixed and name not in values:
            values[name] = source[name].fixed_value()
    params, dists = {}, {}
    for name, value in values.items():
        param = space.get(name)
        if param is None:
            return None  # a knob this spec cannot express
        if param.fixed:
            if value != param.fixed_value():
                return None  # trained with a value this spec holds elsewhere
            continue
        dist = distribution(param)
        if not dist._contains(dist.to_internal_repr(value)):  # noqa: SLF001 - Optuna's own test
            return None
        params[name], dists[name] = value, dist
    # A conditional parameter this spec searches that the trial lacks (a variant's own knob, or
    # one the source fixed): missing, as Optuna's samplers take a parameter a trial never set.
    return params, dists


def _carried(trial: FrozenTrial, study_id: int, source, space) -> FrozenTrial | None:
    declared = carried_params(trial, source, space)
    if declared is None:
        return None
    params, dists = declared
    return optuna.trial.create_trial(
        params=params,
        distributions=dists,
        values=trial.values,
        intermediate_values=trial.intermediate_values,
        user_attrs={
            **trial.user_attrs,
            "warm_start_from": {"study": study_id, "trial": trial.number},
        },
        system_attrs={k: v for k, v in trial.system_attrs.items() if k.startswith("constraints")},
    )


class SourceStore(Protocol):
    """Where the earlier studies are read: the `WorkerStore`'s study look-up and Optuna storage."""

    optuna_storage: BaseStorage

    def get_study(self, study_id: int) -> StudyRecord: ...


def warm_start_trials(store: SourceStore, spec: StudySpec) -> WarmStart:
    """The finished search trials of `spec.search.warm_start`'s studies that fit `spec`;
    `SpecError` (a 422 naming `search.warm_start`) for a study that is missing or differs."""
    space = search_params(spec)
    trials: list[FrozenTrial] = []
    skipped: dict[int, int] = {}
    for study_id in spec.search.warm_start:
        try:
            record = store.get_study(study_id)
        except StudyNotFound:
            raise _refuse(f"study {study_id} does not exist") from None
        try:
            source_spec = validate_spec(record.spec)
        except SpecError:
            raise _refuse(f"study {study_id}'s spec no longer validates") from None
        _check_source(study_id, source_spec, spec)
        source = search_params(source_spec)
        study = optuna.load_study(study_name=record.optuna_name, storage=store.optuna_storage)
        finished = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not any(k in t.user_attrs for k in _NOT_SEARCH)
        ]
        carried = [c for t in finished if (c := _carried(t, study_id, source, space))]
        skipped[study_id] = len(finished) - len(carried)
        trials += carried
    return WarmStart(trials, skipped)
