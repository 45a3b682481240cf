"""Our tables: the study queue and the worker registry (prefixed `studyd_`, beside Optuna's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STUDY_STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
FINAL_STATES = ("done", "failed", "cancelled")


class Base(DeclarativeBase):
    pass


class Study(Base):
    """A queued study: its spec, state and trial-slot counters (claimed ≥ finished)."""

    __tablename__ = "studyd_studies"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name="ck_studyd_studies_state",
        ),
        CheckConstraint("claimed >= 0 AND finished >= 0", name="ck_studyd_studies_counts"),
        UniqueConstraint("optuna_name", name="uq_studyd_studies_optuna_name"),
        UniqueConstraint("idempotency_key", name="uq_studyd_studies_idempotency_key"),
        # The claim query: runnable studies by priority, then age.
        Index("ix_studyd_studies_claim", "state", "priority", "created_at"),
        # Ids are never reused (a deleted study's id given to the next submit served clients and
        # workers the deleted study's cache entries): SQLAlchemy's `autoincrement=True` does not
        # emit SQLite's AUTOINCREMENT, this does. PostgreSQL's sequences never reuse anyway.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    optuna_name: Mapped[str | None] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    target_trials: Mapped[int] = mapped_column(Integer)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    finished: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    test_score: Mapped[float | None] = mapped_column(Float)
    # The test score comes after `done` (see `final_step`): when it was recorded, and the wall
    # seconds its retraining and test evaluation took, reported apart from the search's timings.
    test_scored_at: Mapped[datetime | None] = mapped_column(DateTime)
    test_score_seconds: Mapped[float | None] = mapped_column(Float)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # What the study still owes once its search target is reached: "replicates" (the search holds
    # at its target until they are enqueued), then "score" (the test split), then nothing.
    final_step: Mapped[str | None] = mapped_column(String(16))
    # The worker doing that step now; a claim of a worker whose row is gone is free to take.
    final_step_worker: Mapped[int | None] = mapped_column(Integer)


class Worker(Base):
    """A live worker and the trial slot it holds (study, Optuna trial), if any."""

    __tablename__ = "studyd_workers"
    # A reaped worker's late heartbeat must not land on a newcomer that got its id.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(64))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime, index=True)
    study_id: Mapped[int | None] = mapped_column(Integer, index=True)
    trial_id: Mapped[int | None] = mapped_column(Integer)
    trial_number: Mapped[int | None] = mapped_column(Integer)
    # An extra slot of a worker's stack: the worker's own row (NULL on that row itself).
    lease_of: Mapped[int | None] = mapped_column(Integer, index=True)
