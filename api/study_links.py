"""What the API tells about a study from its Optuna study: the dashboard page that shows it (the
dashboard numbers studies by Optuna's id, not ours) and why its search ended early, if it did."""

from __future__ import annotations

from dataclasses import dataclass

from api.context import AppContext
from storage import queue

# The dashboard's page of one study, under its mount (api/dashboard.py).
DASHBOARD_STUDY_PATH = "/dashboard/studies/{optuna_id}"
# The Optuna study attribute a worker writes when the search ends before its n_trials
# (studyd.daemon.worker.outcomes: the space is exhausted, or proposals kept repeating).
SEARCH_ENDED_ATTR = "search_ended"


@dataclass(frozen=True)
class OptunaFacts:
    optuna_id: int | None
    search_ended: str | None

    def dashboard_url(self, base_url: str) -> str | None:
        if self.optuna_id is None:
            return None
        return base_url.rstrip("/") + DASHBOARD_STUDY_PATH.format(optuna_id=self.optuna_id)


def optuna_facts(ctx: AppContext, record: queue.StudyRecord) -> OptunaFacts:
    """The Optuna id and `search_ended` of `record` (both None before its Optuna study exists)."""
    storage = ctx.optuna_storage()
    try:
        optuna_id = storage.get_study_id_from_name(record.optuna_name)
    except KeyError:
        return OptunaFacts(None, None)
    ended = storage.get_study_user_attrs(optuna_id).get(SEARCH_ENDED_ATTR)
    return OptunaFacts(optuna_id, None if ended is None else str(ended))
