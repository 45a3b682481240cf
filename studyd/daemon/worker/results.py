"""A slot's records: the claim it holds, and its trial's result (`TrialResult`), which
`slot_end.decide` reads and `repeats` may replace with a twin's."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import optuna

from storage.worker_store import StudyRecord


class Ending(Enum):
    """What happened to a slot's trial."""

    TRAINED = "trained"  # trained, or took a finished equal run's outcome
    STOPPED = "stopped"  # SIGTERM, or its study cancelled, mid-trial
    STORAGE = "storage"  # the database failed under it
    REAPED = "reaped"  # the reaper failed it (we looked dead) and settled its slot
    UNTRAINABLE = "untrainable"  # the spec cannot train: the study fails


@dataclass
class Claim:
    """A slot of the study and the worker row holding it (the worker's own, or an extra lease)."""

    record: StudyRecord
    lease: int | None


@dataclass
class TrialResult:
    """One slot's trial and how it went: the record `decide` reads."""

    claim: Claim
    trial: optuna.Trial | None  # None: interrupted before its trial was asked
    ending: Ending
    attrs: dict[str, Any] | None = None  # what a trained trial records
    pruned: bool = False
    duplicate: bool = False  # a run the study has: told its result, not counted
    # Why it broke a constraint the config decides (`config_constraints`): told PRUNED
    # untrained, its slot given back like a repeat's.
    untrained_infeasible: str | None = None
