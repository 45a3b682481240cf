"""What the API tells about a study from its Optuna study: the dashboard page that shows it (the
dashboard numbers studies by Optuna's id, not ours) and why its search ended early, if it did."""

from __future__ import annotations

from dataclasses import dataclass

from storage.trials import StudyTrialStats

# The dashboard's page of one study, under its mount (api/dashboard.py).
DASHBOARD_STUDY_PATH = "/dashboard/studies/{optuna_id}"


@dataclass(frozen=True)
class OptunaFacts:
    optuna_id: int | None
    search_ended: str | None

    def dashboard_url(self, base_url: str) -> str | None:
        if self.optuna_id is None:
            return None
        return base_url.rstrip("/") + DASHBOARD_STUDY_PATH.format(optuna_id=self.optuna_id)


def optuna_facts(stats: StudyTrialStats) -> OptunaFacts:
    """The Optuna id and `search_ended` of a study, read with its progress
    (`storage.trials.study_progress`; both None before its Optuna study exists)."""
    return OptunaFacts(stats.optuna_study_id, stats.search_ended)
