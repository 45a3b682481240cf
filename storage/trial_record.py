"""One trial as storage reads it: the record of API pages and details, best trials and scans.

Pages and scans read the same Optuna rows (the trial row, then one query per side table over the
page's trial ids) and map them here, once: `trial_record`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.optuna_schema import enum_name
from storage.timestamps import as_utc

# The user attribute that marks a seed replicate: the number of the search trial it repeats.
REPLICATE_ATTR = "replicate_of"


def meets_constraints(values: Mapping[str, float]) -> bool:
    """Optuna's rule: feasible when every constraint value is ≤ 0 (none: feasible)."""
    return all(v <= 0 for v in values.values())


@dataclass(frozen=True)
class TrialRecord:
    """A trial: its row, first objective `value`, and what the reader asked of its side tables
    (`user_attrs` may be a subset; `values`, every objective, only where a scan read them;
    `intermediate_values` only on a trial's detail)."""

    trial_id: int
    number: int
    state: str  # Optuna's state, lower case
    value: float | None
    datetime_start: dt.datetime | None
    datetime_complete: dt.datetime | None
    params: dict[str, Any] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    # Each constraint's violation by its text (≤ 0 satisfied; +inf: its metric was missing);
    # empty when the study has no constraints or the trial has not been told yet.
    constraints: dict[str, float] = field(default_factory=dict)
    values: list[float | None] | None = None
    intermediate_values: list[tuple[int, float | None]] = field(default_factory=list)

    @property
    def feasible(self) -> bool | None:
        """Whether it met every constraint; None when it has no constraint values (the study has
        no constraints, or the trial was not told yet)."""
        return meets_constraints(self.constraints) if self.constraints else None

    @property
    def counts_as_feasible(self) -> bool:
        """Optuna's reading, which its samplers and best trial use: no constraint values is
        feasible."""
        return self.feasible is not False

    @property
    def duration_seconds(self) -> float | None:
        if self.datetime_start is None or self.datetime_complete is None:
            return None
        return (self.datetime_complete - self.datetime_start).total_seconds()


def trial_record(
    row: Any,
    *,
    value: float | None,
    params: dict[str, Any],
    user_attrs: dict[str, Any],
    constraints: dict[str, float],
    values: list[float | None] | None = None,
) -> TrialRecord:
    """The record of an Optuna `trials` row (`trial_id, number, state, datetime_start,
    datetime_complete`) and its side tables: the one place rows become records."""
    return TrialRecord(
        trial_id=row.trial_id,
        number=row.number,
        state=enum_name(row.state).lower(),
        value=value,
        datetime_start=as_utc(row.datetime_start),
        datetime_complete=as_utc(row.datetime_complete),
        params=params,
        user_attrs=user_attrs,
        constraints=constraints,
        values=values,
    )
