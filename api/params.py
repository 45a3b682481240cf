"""Path and query parameters shared by the routes, with the bounds that keep SQL integers sane."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

# Larger pages are served at this size (the response's `limit` says so).
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
# Ids and numbers beyond a 32-bit signed integer cannot exist in any table we query.
MAX_ID = 2**31 - 1
MAX_OFFSET = 10**9

StudyId = Annotated[int, Path(ge=1, le=MAX_ID, description="study id", examples=[7])]
TrialNumber = Annotated[
    int, Path(ge=0, le=MAX_ID, description="trial number within the study", examples=[0])
]
Limit = Annotated[
    int,
    Query(ge=1, le=MAX_OFFSET, description=f"page size; pages are capped at {MAX_PAGE_SIZE}"),
]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]


def capped(limit: int) -> int:
    return min(limit, MAX_PAGE_SIZE)
