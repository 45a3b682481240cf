"""The study summary: which dropout works here, and how sure we are."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from api.context import AppContext, context, in_thread, settle_heap
from api.convert import trial_brief
from api.errors import responses
from api.params import StudyId
from api.schemas import PlacementStats, Summary, VariantStats, VariantStatus
from api.study_links import optuna_facts
from storage import queue, trials
from storage.trial_record import TrialRecord
from storage.trials import StudyTrialStats
from studyd.spec import SpecError, validate_spec

router = APIRouter(tags=["studies"])

# fANOVA over the most recent trials only: its cost grows with the trial count, and a summary
# must answer in well under a second at 10 000 trials.
IMPORTANCE_MAX_TRIALS = 300
IMPORTANCE_MIN_TRIALS = 4
IMPORTANCE_SEED = 0
STATS = ("n", "n_reused", "best", "median")


def _importances(
    evidence: dict[str, Any], variants: list[dict[str, Any]]
) -> tuple[dict[str, float], str | None]:
    """fANOVA over the runs every other number of the summary counts: trained runs (a reused
    trial is its original again), feasible configurations only when the spec has constraints
    and some are (`analysis.evidence`: its variant-aware importances' `overall`)."""
    counted = sum(int(v["n"]) for v in variants)
    if counted < IMPORTANCE_MIN_TRIALS:
        need = IMPORTANCE_MIN_TRIALS
        return {}, f"importances need at least {need} trained runs (have {counted})"
    found = evidence.get("variant_importances")
    if found is None:
        return {}, "importances unavailable: fANOVA could not fit these runs"
    overall = found.get("overall") or {}
    params = {k: float(v) for k, v in (overall.get("params") or {}).items()}
    if not params:
        return {}, "no parameter varies among those every counted run has"
    fitted = int(overall.get("n_trials", counted))
    note = f"over the {fitted} most recent of {counted} trained runs" if fitted < counted else None
    return params, note


def _evidence(
    ctx: AppContext, record: queue.StudyRecord, direction: str
) -> tuple[dict[str, Any], list[str], list[str], list[str]]:
    """Verdict, CIs, variant importances, diagnostics, Pareto front (analysis.evidence)."""
    from studyd.analysis.evidence import (
        study_evidence,  # brings optuna.importance and SciPy
    )

    auto_repeats = None
    try:
        spec = validate_spec(record.spec)
        objectives, directions = spec.search.objective_names(), spec.search.directions()
        constraints = list(spec.search.constraints)
        auto_repeats = spec.auto_repeats
    except SpecError:
        objectives, directions, constraints = ["value"], [direction], []
    evidence = study_evidence(
        ctx.engine,
        record.optuna_name,
        directions=directions,
        importance_max_trials=IMPORTANCE_MAX_TRIALS,
        seed=IMPORTANCE_SEED,
        auto_repeats=auto_repeats,
    )
    return dict(evidence), objectives, directions, constraints


def _complete_trials_summary(
    ctx: AppContext, record: queue.StudyRecord, stats: StudyTrialStats, best: TrialRecord | None
) -> Summary:
    """Everything of the summary that the study's complete trials decide (all but state and
    test score): computed once per `StudyTrialStats.complete_key`."""
    from studyd.analysis.evidence import best_trial_note, headline_verdict  # see _evidence

    n_complete = stats.counts["complete"]
    attrs: dict[str, Any] = best.user_attrs if best is not None else {}
    evidence, objectives, directions, constraints = _evidence(ctx, record, stats.direction)
    # Every per-variant number counts the same trials: trained runs (a reused one once).
    variants, placements = evidence.pop("variant_stats"), evidence.pop("placement_stats")
    importances, note = _importances(evidence, variants)
    brief = trial_brief(best) if best is not None else None
    best_note = best_trial_note(brief.model_dump() if brief else None, evidence, variants)
    return Summary(
        study_id=record.id,
        state=record.state,  # type: ignore[arg-type]
        direction=stats.direction,  # type: ignore[arg-type]
        n_complete=n_complete,
        # With seed replicates, the verdict the paired tests support; else the medians, no claim.
        verdict=headline_verdict(evidence.pop("verdict"), variants),
        best_trial_note=best_note,
        objectives=objectives,
        directions=directions,  # type: ignore[arg-type]
        constraints=constraints,
        **evidence,
        variants=[VariantStats(variant=v["group"], **{k: v[k] for k in STATS}) for v in variants],
        placements=[
            PlacementStats(placement=p["group"], **{k: p[k] for k in STATS}) for p in placements
        ],
        importances=importances,
        importances_note=note,
        best=brief,
        best_config=attrs.get("config") if isinstance(attrs.get("config"), dict) else None,
        best_train=attrs.get("train") if isinstance(attrs.get("train"), dict) else None,
        test_score=record.test_score,
        test_score_seconds=record.test_score_seconds,
    )


@router.get(
    "/studies/{study_id}/summary", response_model=Summary, responses=responses(404, 422, 503)
)
async def study_summary(
    study_id: StudyId, ctx: Annotated[AppContext, Depends(context)]
) -> Response:
    """Per-variant and per-placement best and median, importances, best config, test score.

    Recomputed only after a trial completes (cached per study, a few studies at a time).
    """
    return Response(
        await in_thread(lambda: summary_json(ctx, study_id)), media_type="application/json"
    )


def summary_json(ctx: AppContext, study_id: int) -> str:
    """The summary's JSON, kept under all it is made of: the complete trials' part (computed
    once per `StudyTrialStats.complete_key`) and the study's fields that change apart from them.
    Dumped here, in the pool: FastAPI's validation and dump of a summary (6% of a cached
    summary's profile) ran on the event loop."""
    with ctx.read_connection() as conn:  # closed before a cold summary's seconds of work
        record = queue.get_study(conn, study_id)
        stats, best = trials.study_progress(conn, record.optuna_name, ctx.best_trials)
    key = (record.id, *stats.complete_key)
    # May change after the trials (a cancel, the test-score retraining, a worker ending the search).
    current = {k: getattr(record, k) for k in ("state", "test_score", "test_score_seconds")}
    current["search_ended"] = optuna_facts(stats).search_ended
    # Pruned, failed and untrained-infeasible trials change what it says of each variant.
    json_key = (key, *current.values(), *sorted(stats.counts.items()))
    found: str | None = ctx.summary_json.get(json_key)
    if found is None:
        coverage = _coverage(ctx, record, stats)
        current["requested_variants"] = [VariantStatus(**c) for c in coverage]
        summary = _complete_summary(ctx, key, record, stats, best)
        found = summary.model_copy(update=current).model_dump_json()
        ctx.summary_json[json_key] = found
    return found


def _coverage(
    ctx: AppContext, record: queue.StudyRecord, stats: StudyTrialStats
) -> list[dict[str, Any]]:
    """Every requested variant's status (`analysis.coverage`), recomputed when a count moves."""
    key = ("coverage", record.id, *stats.complete_key, *sorted(stats.counts.items()))
    found = ctx.summaries.get(key)
    if found is None:
        from studyd.analysis.evidence import study_coverage  # see _evidence

        try:
            requested = list(validate_spec(record.spec).dropout.variants)
        except SpecError:
            requested = []
        found = study_coverage(ctx.engine, record.optuna_name, requested)
        ctx.summaries[key] = found
    return found


def _complete_summary(
    ctx: AppContext,
    key: tuple[Any, ...],
    record: queue.StudyRecord,
    stats: StudyTrialStats,
    best: TrialRecord | None,
) -> Summary:
    summary = ctx.summaries.get(key)
    if summary is None:
        # One cold computation at a time: concurrent requests for the same study wait for the
        # first and find its result; two different studies never double the peak memory.
        with ctx.summary_lock:
            summary = ctx.summaries.get(key)
            if summary is None:
                summary = _complete_trials_summary(ctx, record, stats, best)
                ctx.summaries[key] = summary
                settle_heap()
    return summary
