"""Which variant works across several studies: GET /compare?ids=1,2,3 (analysis.compare)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.context import AppContext, context
from api.errors import responses
from api.params import MAX_ID
from api.routes.summary import summary_json  # cached: the verdict rows `summary` shows
from storage import queue

router = APIRouter(tags=["studies"])


class VariantInStudy(BaseModel):
    mean: float = Field(description="the verdict's mean: over replicate seeds when replicated")
    n_seeds: int
    replicated: bool = Field(description="false: one search configuration's value (noisier)")
    rank: float = Field(description="1 = best in this study's direction; ties share the mean rank")


class StudyRanks(BaseModel):
    study_id: int
    name: str
    dataset: str
    direction: str
    scores: dict[str, VariantInStudy]


class OmnibusTest(BaseModel):
    test: str = Field(description="friedman (3+ variants) or wilcoxon (2)")
    statistic: float | None = Field(description="Friedman's χ² (tie-corrected)")
    p_value: float = Field(
        description="the gate: Friedman's by permutation of each study's ranks, or Wilcoxon's"
    )
    chi2_p_value: float | None = Field(default=None, description="χ² approximation's p")
    f: float | None = Field(default=None, description="Iman–Davenport F (Friedman only)")
    f_p_value: float | None = Field(default=None, description="F approximation's p")
    rejected: bool
    differences: list[float] | None = Field(
        default=None, description="Wilcoxon: a − b per study, in each study's direction"
    )


class RankPair(BaseModel):
    a: str = Field(description="the better-ranked of the two")
    b: str
    rank_diff: float
    p_value: float
    different: bool = Field(description="told apart (Nemenyi after a rejecting Friedman test)")


class StudyComparison(BaseModel):
    """Ranks across studies, the omnibus test, the post-hoc pairs and a plain-words answer."""

    answer: str
    alpha: float
    variants: list[str] = Field(description="the shared variants, best average rank first")
    mean_ranks: dict[str, float]
    left_out: dict[str, list[int]] = Field(
        description="variants not measured in every study: the studies without them"
    )
    unreplicated: list[str] = Field(description="STUDY:VARIANT scores without seed replicates")
    studies: list[StudyRanks]
    test: OmnibusTest
    posthoc: str | None
    critical_difference: float | None = Field(description="Nemenyi's CD in average ranks")
    pairs: list[RankPair]


def _scores(ctx: AppContext, study_id: int):
    from studyd.analysis.compare import StudyScores, VariantScore

    record = queue.get_study(ctx.engine, study_id)
    summary = json.loads(summary_json(ctx, study_id))
    variants = {
        row["group"]: VariantScore(row["mean"], int(row["n_seeds"]), bool(row["replicated"]))
        for row in summary.get("by_variant") or []
        if row.get("mean") is not None
    }
    dataset: Any = record.spec.get("dataset", "digits")
    name = dataset.get("name", "?") if isinstance(dataset, dict) else str(dataset)
    return StudyScores(study_id, record.name, name, summary["direction"], variants)


@router.get("/compare", response_model=StudyComparison, responses=responses(404, 409, 422, 503))
def compare_studies(
    ctx: Annotated[AppContext, Depends(context)],
    ids: Annotated[
        str,
        Query(
            # The schema says 3 to 50 ids, so a schema-valid list is never refused for its length;
            # the route checks the count itself to say what to fix (pydantic's pattern message
            # would only quote the regex).
            json_schema_extra={"pattern": r"^\d{1,10}(,\d{1,10}){2,49}$"},
            description="study ids, comma-separated (3 to 50), e.g. 1,2,3",
            examples=["1,2,3"],
        ),
    ],
    alpha: Annotated[float, Query(gt=0, le=0.2, description="the tests' level")] = 0.05,
) -> StudyComparison:
    """Which variant works across studies: per study its variants' replicate means and ranks,
    the Friedman test (Iman–Davenport F) and Nemenyi post-hoc (Demšar 2006), and an answer.
    Studies without complete trials, or sharing fewer than two variants, are refused with 409
    (their data cannot be ranked yet); a repeated id with 422; an id no study can have (0, over
    2**31 - 1) with 404."""
    from studyd.analysis.compare import ComparisonNotReady, ComparisonRefused, compare_studies

    if not re.fullmatch(r"\d{1,10}(,\d{1,10}){0,99}", ids):
        raise HTTPException(422, detail="ids: write 3 to 50 study ids, comma-separated, e.g. 1,2,3")
    numbers = [int(i) for i in ids.split(",")]
    outside = [i for i in numbers if not 1 <= i <= MAX_ID]
    if outside:
        # Well formed for the schema (up to 10 digits), so not a 422: no such study can exist.
        raise HTTPException(404, detail=f"no study {outside[0]}: study ids are 1 to {MAX_ID}")
    studies = [_scores(ctx, i) for i in numbers]
    try:
        return StudyComparison(**compare_studies(studies, alpha=alpha))
    except ComparisonNotReady as exc:
        raise HTTPException(409, detail=f"ids: {exc}") from None
    except ComparisonRefused as exc:
        raise HTTPException(422, detail=f"ids: {exc}") from None
