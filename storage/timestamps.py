"""The database's datetimes are naive UTC (Optuna's and our queue's alike): made aware here."""

from __future__ import annotations

import datetime as dt


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A naive datetime from the database as the same instant in UTC; aware ones as they are."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
