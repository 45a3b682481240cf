"""Response models of the REST API: the JSON shapes the CLI client and other callers rely on.

Shapes (all datetimes ISO 8601 in UTC, `null` when not yet known):

- `Study` (a list item): `id, name, optuna_name, state, priority, target_trials, claimed,
  finished, created_at, started_at, finished_at, error, test_score`.
  `state` is one of `queued, running, done, failed, cancelled`.
- `StudyDetail` = `Study` + `spec` (the submitted spec, normalised), `direction`,
  `trial_counts` (`{running, waiting, complete, pruned, fail}`: Optuna's trial states, lower
  case), `best_trial` (a `TrialBrief` or null), `timings` (`elapsed_seconds` ends at `done`;
  the test score's retraining comes after, reported as `test_scored_at`, `test_score_seconds`).
- `TrialBrief` (a page item): `number, state, value, variant, placement, params,
  datetime_start, datetime_complete, duration_seconds, user_attrs` (only the small attributes:
  variant, placement, train_acc, val_acc, gap, param_count, epoch_seconds, retry_of, and
  `error`: why a FAIL trial failed, "cancelled: …" when its study's cancel stopped it).
- `TrialDetail` = `TrialBrief` with every user attribute plus `config` (ModelConfig as dict),
  `train` (TrainConfig as dict), `curve` (per-epoch metrics) and `intermediate_values`.
- `Summary`: `verdict, best_trial_note, variants, placements, importances, importances_note, best,
  best_config, test_score, test_score_seconds, direction, n_complete`, and the evidence
  (`by_variant`, `by_placement`: configs chosen on the search trials and tested on replicate
  seeds; `diagnostics`, ...). Every per-variant count is of trained runs: a trial that reused a
  run's result counts once.
- Pages: `{"items": [...], "total": int, "limit": int, "offset": int}`.
- Errors: `{"detail": "<one readable line>"}`; 422s add `"errors": [{"loc", "msg"}]`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from storage.timestamps import as_utc

StudyState = Literal["queued", "running", "done", "failed", "cancelled"]
TrialState = Literal["running", "waiting", "complete", "pruned", "fail"]
Item = TypeVar("Item")

_NOW = "2026-11-25T14:00:00Z"
# Where a best trial is shown, the rule that chose it (storage.trials: the API's best trial).
BEST_RULE = (
    "the best complete search trial: feasible ones first when the spec has constraints, the "
    "lowest number among equal values; seed replicates are not candidates (the best of a "
    "config's fresh seeds is its luckiest); the test score retrains this trial"
)


class ErrorBody(BaseModel):
    """Every error: one readable line; validation errors list each problem with its field."""

    detail: str = Field(examples=["study 42 does not exist"])
    errors: list[dict[str, Any]] | None = Field(
        default=None, examples=[[{"loc": "search.n_trials", "msg": "must be <= 10000"}]]
    )


class Page(BaseModel, Generic[Item]):
    """One page of a listing; `limit` is the page size actually used (after the cap)."""

    items: list[Item]
    total: int = Field(ge=0, description="items matching the filters, over all pages")
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)


class Study(BaseModel):
    """A queued, running or finished study."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "name": "digits-shootout",
                    "optuna_name": "digits-shootout-7",
                    "state": "running",
                    "priority": 0,
                    "target_trials": 40,
                    "claimed": 12,
                    "finished": 10,
                    "created_at": _NOW,
                    "started_at": _NOW,
                    "finished_at": None,
                    "error": None,
                    "test_score": None,
                }
            ]
        }
    )

    id: int
    name: str
    optuna_name: str = Field(description="the Optuna study holding the trials")
    state: StudyState
    priority: int
    target_trials: int = Field(description="trials the study runs in all")
    claimed: int = Field(description="trial slots taken by workers (running or finished)")
    finished: int = Field(description="trials finished (complete, pruned or failed for good)")
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None = Field(description="why the study failed, if it did")
    test_score: float | None = Field(description="test accuracy of the best trial, when done")

    _aware_times = field_validator("created_at", "started_at", "finished_at")(as_utc)


class TrialBrief(BaseModel):
    """One trial as a page lists it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": 3,
                    "state": "complete",
                    "value": 0.972,
                    "variant": "standard",
                    "placement": "hidden",
                    "params": {"variant": "standard", "rate": 0.31, "width": 256},
                    "datetime_start": _NOW,
                    "datetime_complete": _NOW,
                    "duration_seconds": 4.2,
                    "user_attrs": {"variant": "standard", "val_acc": 0.972, "gap": 0.01},
                }
            ]
        }
    )

    number: int
    state: TrialState
    value: float | None = Field(description="objective value (validation accuracy by default)")
    variant: str | None
    placement: str | None
    params: dict[str, Any]
    datetime_start: dt.datetime | None
    datetime_complete: dt.datetime | None
    duration_seconds: float | None
    user_attrs: dict[str, Any]
    hidden: list[int] | None = Field(
        default=None,
        description="the hidden layers' widths it trained, input side first (null before its "
        "network is recorded)",
    )
    feasible: bool | None = Field(
        default=None,
        description="every constraint of the spec satisfied (null: the study has none, or the "
        "trial is not finished); an infeasible trial is never the best while one is feasible",
    )
    constraints: dict[str, float | None] = Field(
        default_factory=dict,
        description="each constraint's violation by its text: ≤ 0 satisfied, how far over "
        "otherwise, null when its metric was not measured",
    )


class IntermediateValue(BaseModel):
    step: int = Field(description="epoch index from 0")
    value: float | None


class TrialDetail(TrialBrief):
    """One trial with everything the worker recorded."""

    config: dict[str, Any] | None = Field(description="the ModelConfig the trial trained")
    train: dict[str, Any] | None = Field(description="the TrainConfig the trial trained with")
    curve: list[dict[str, Any]] = Field(
        description="per epoch: epoch, train_loss, train_acc, val_loss, val_acc, seconds"
    )
    intermediate_values: list[IntermediateValue]


class TrialCounts(BaseModel):
    running: int = 0
    waiting: int = 0
    complete: int = 0
    pruned: int = 0
    fail: int = 0


class Timings(BaseModel):
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    first_trial_start: dt.datetime | None
    last_trial_complete: dt.datetime | None
    elapsed_seconds: float | None = Field(description="from start to finish (or to now)")
    test_scored_at: dt.datetime | None = Field(
        default=None, description="when the test score was recorded (after `finished_at`)"
    )
    test_score_seconds: float | None = Field(
        default=None,
        description="the test score's retraining and evaluation, in wall seconds: after `done`, "
        "so not in `elapsed_seconds`",
    )

    _aware_times = field_validator("created_at", "started_at", "finished_at", "test_scored_at")(
        as_utc
    )


class StudyDetail(Study):
    """A study with its spec, progress by trial state, best trial so far and timings."""

    spec: dict[str, Any]
    direction: Literal["maximize", "minimize"]
    trial_counts: TrialCounts
    best_trial: TrialBrief | None = Field(description=BEST_RULE)
    timings: Timings
    dashboard_url: str | None = Field(
        default=None, description="this study's optuna-dashboard page (its id there is Optuna's)"
    )
    search_ended: str | None = Field(
        default=None,
        description="why the search ended before n_trials distinct configurations, if it did",
    )


_TRAINED = "trained runs: a trial that reused an identical run's result counts once, as that run"


class VariantStats(BaseModel):
    """Best and median objective value over the trained runs of one variant."""

    variant: str
    n: int = Field(description=_TRAINED)
    n_reused: int = Field(default=0, description="complete trials that reused a run's result")
    best: float | None
    median: float | None


class VariantStatus(BaseModel):
    """What became of one requested variant's trials (every variant the spec asks for)."""

    variant: str
    trained: int = Field(description="feasible runs trained to the end (a reused one once)")
    pruned: int
    infeasible: int = Field(description="trials that broke a constraint, trained or not")
    failed: int
    pending: int = Field(description="waiting or running")
    status: str = Field(description='e.g. "gaussian: 0 trained runs (1 pruned at epoch 2)"')


class PlacementStats(BaseModel):
    """Best and median objective value over the trained runs of one placement."""

    placement: str
    n: int = Field(description=_TRAINED)
    n_reused: int = Field(default=0, description="complete trials that reused a run's result")
    best: float | None
    median: float | None


class Comparison(BaseModel):
    """A group's best config against a reference group's best: paired over shared replicate
    seeds (the seeds the search did not use to choose either config)."""

    n_pairs: int = Field(description="replicate seeds both configs were trained with")
    mean_diff: float | None = Field(description="this − reference, in objective units")
    half_width: float | None = Field(description="95% t-interval half-width of mean_diff")
    p_value: float | None = Field(
        description="paired t-test (scipy.stats.ttest_rel); null with fewer than 3 pairs or "
        "identical differences on every seed"
    )
    paired: bool
    improvement: float | None = Field(description="mean_diff signed so > 0 is better")
    different: bool = Field(description="p_value < 0.05, unadjusted: not by itself a claim")
    claimed: bool = Field(
        default=False,
        description="the verdict states this difference (fixed-sequence test at 5%: the "
        "leader beats none, then every other group)",
    )


class GroupRank(BaseModel):
    """A variant (or placement): its config chosen on the search trials, scored on replicates."""

    group: str
    config_key: str = Field(description="canonical configuration (without the seed)")
    replicated: bool = Field(description="its chosen config has at least 3 replicate seeds")
    n_configs: int
    n_candidates: int = Field(
        default=0, description="configs with at least 3 replicate seeds (the choice's pool)"
    )
    n_trials: int
    search_value: float | None = Field(
        default=None, description="the chosen config's search-trial value (what chose it)"
    )
    n_seeds: int = Field(description="seeds its mean is over: the replicate seeds if replicated")
    mean: float | None
    sd: float | None
    half_width: float | None = Field(description="95% CI half-width: t·sd/√n")
    ci_low: float | None
    ci_high: float | None
    gap_mean: float | None = Field(description="mean train − val accuracy of the best config")
    vs_best: Comparison | None = Field(description="against the leader (the first row)")
    vs_none: Comparison | None


class ParamImportances(BaseModel):
    """fANOVA over the parameters every trial of the group has."""

    n_trials: int
    params: dict[str, float]
    constant_params: list[str]
    conditional_params: list[str] = Field(description="present in some trials only")


class VariantParamImportances(ParamImportances):
    """fANOVA within one variant (its own knobs included) and its marginal effect."""

    marginal_mean: float | None
    marginal_effect: float | None = Field(description="its trials' mean − the grand mean")


class VariantImportances(BaseModel):
    overall: ParamImportances | None
    variants: dict[str, VariantParamImportances]


class VariantDiagnostics(BaseModel):
    """Means over a variant's trained runs (the trials `variants` counts)."""

    variant: str
    n: int = Field(description=_TRAINED)
    train_acc: float | None
    val_acc: float | None
    gap: float | None = Field(description="train − val accuracy")
    val_ece: float | None = Field(description="expected calibration error, 15 bins")
    val_nll: float | None
    mc_ece: float | None = Field(description="ECE of the MC-dropout mean prediction")
    train_eval_sym_kl: float | None = Field(description="train- vs eval-mode symmetric KL")
    ms_per_1k: float | None = Field(description="eval forward time per 1000 samples")


class ParetoTrial(BaseModel):
    number: int
    values: list[float] = Field(description="one per objective, in the spec's order")
    variant: str
    placement: str
    config_key: str | None


class Summary(BaseModel):
    """Which dropout works here, and how sure we are."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "study_id": 7,
                    "state": "done",
                    "direction": "maximize",
                    "n_complete": 40,
                    "verdict": "standard is best; it beats the runner-up gaussian by 0.9±0.4 "
                    "points and none by 2.1±0.5 points.",
                    "variants": [{"variant": "standard", "n": 14, "best": 0.975, "median": 0.968}],
                    "placements": [{"placement": "hidden", "n": 30, "best": 0.975, "median": 0.96}],
                    "importances": {"rate": 0.52, "width": 0.31, "variant": 0.17},
                    "importances_note": None,
                    "best": None,
                    "best_config": {"hidden": [256, 256], "variant": "standard"},
                    "best_train": {"epochs": 10, "lr": 0.001},
                    "test_score": 0.969,
                }
            ]
        }
    )

    study_id: int
    state: StudyState
    direction: Literal["maximize", "minimize"]
    n_complete: int
    verdict: str | None
    best_trial_note: str | None = Field(
        default=None,
        description="when the single best trial is not of the variant the verdict leads with "
        "(or, without replicates, of the highest median): both, and why they differ",
    )
    variants: list[VariantStats]
    requested_variants: list[VariantStatus] = Field(
        default_factory=list,
        description="every variant the spec asks for (then any other seen), with its status",
    )
    placements: list[PlacementStats]
    importances: dict[str, float] = Field(description="Optuna's fANOVA importances, sum 1")
    importances_note: str | None = Field(description="why importances are empty, when they are")
    best: TrialBrief | None = Field(description=BEST_RULE)
    best_config: dict[str, Any] | None
    best_train: dict[str, Any] | None
    test_score: float | None
    test_score_seconds: float | None = Field(
        default=None, description="its retraining and evaluation, in wall seconds (after `done`)"
    )
    objectives: list[str] = Field(default_factory=list, description="the spec's objectives")
    directions: list[Literal["maximize", "minimize"]] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list, description="e.g. `gap <= 0.05`")
    confidence: float = 0.95
    placement_verdict: str | None = None
    by_variant: list[GroupRank] = Field(
        default_factory=list,
        description="per variant: the config the search chose, its mean over replicate seeds, "
        "CI and paired tests; the leader (the search's best replicated variant) first",
    )
    by_placement: list[GroupRank] = Field(default_factory=list)
    variant_importances: VariantImportances | None = Field(
        default=None, description="fANOVA within each variant (its own knobs) + marginal effect"
    )
    diagnostics: list[VariantDiagnostics] = Field(default_factory=list)
    pareto_front: list[ParetoTrial] | None = Field(
        default=None, description="multi-objective studies: the non-dominated feasible trials"
    )
    n_feasible: int = 0
    n_replicates: int = Field(default=0, description="complete seed-replicate trials")
    n_reused: int = Field(default=0, description="trials that reused a finished run's result")
    search_ended: str | None = Field(
        default=None,
        description="why the search ended before n_trials distinct configurations, if it did",
    )


class Worker(BaseModel):
    """A live worker process and what it is doing."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "host": "gpu-box-1",
                    "device": "cuda:0",
                    "pid": 4242,
                    "study_id": 7,
                    "trial_id": 120,
                    "trial_number": 11,
                    "started_at": _NOW,
                    "last_heartbeat": _NOW,
                }
            ]
        }
    )

    id: int | None = Field(
        description="the worker's row; null for an embedded worker that is down (it has none)"
    )
    host: str
    device: str
    pid: int | None
    study_id: int | None
    trial_id: int | None
    trial_number: int | None
    trials: list[int] = Field(
        default_factory=list,
        description="trial numbers of study_id this process holds: one, or a stack's several",
    )
    started_at: dt.datetime | None
    last_heartbeat: dt.datetime | None
    state: Literal["alive", "restarting", "failed"] = Field(
        default="alive",
        description="alive (heartbeating); for a worker `studyd serve` embeds that died: "
        "restarting (after a backoff) or failed (it kept dying and is not restarted)",
    )
    restarts: int = Field(
        default=0, description="times `studyd serve` restarted this embedded worker (alive or down)"
    )
    last_exit_code: int | None = Field(default=None, description="a dead embedded worker's exit")

    _aware_times = field_validator("started_at", "last_heartbeat")(as_utc)


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"
