"""Issue 25 item 5: one trial record type in storage/.

`storage.trials.TrialRow` (API pages, details, best trial) and `storage.trial_scan.ScannedTrial`
(the summary's and the CSV export's scans) shared seven fields and the same row mapping, and
`feasible` meant two things: False/True/None on one, True for "no constraint values" on the
other. Both readers now return `storage.trial_record.TrialRecord`, mapped by one function, and
a trial reads the same through each.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution

from storage import trial_scan, trials
from storage.trial_record import TrialRecord

FIELDS = ("trial_id", "number", "state", "value", "datetime_start", "datetime_complete")


@pytest.fixture
def study(optuna_storage) -> optuna.Study:
    """Three complete trials, two told their constraint (one met, one not), and one running."""
    study = optuna.create_study(study_name="records", storage=optuna_storage)
    for x, violation in ((0.1, -1.0), (0.2, 2.0), (0.3, None)):
        system_attrs = {} if violation is None else {"constraints:gap <= 0.05": violation}
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": x},
                distributions={"x": FloatDistribution(0, 1)},
                value=x,
                user_attrs={"variant": "standard"},
                system_attrs=system_attrs,
            )
        )
    study.ask()
    return study


def test_pages_details_best_and_scans_read_one_record_alike(engine, study):
    page = trials.trial_page(engine, "records", limit=10).rows
    scanned = [t for p in trial_scan.scan_trials(engine, "records") for t in p]
    details = [trials.get_trial(engine, "records", n) for n in range(4)]
    for records in (page, scanned, details, [trials.best_trial(engine, "records")]):
        assert all(type(r) is TrialRecord for r in records)
    for a, b, c in zip(page, scanned, details, strict=True):
        assert [getattr(a, f) for f in FIELDS] == [getattr(b, f) for f in FIELDS]
        assert [getattr(a, f) for f in FIELDS] == [getattr(c, f) for f in FIELDS]
        assert a.params == b.params == c.params
        assert a.constraints == b.constraints == c.constraints
        assert a.feasible is b.feasible is c.feasible
    assert [t.state for t in scanned] == ["complete", "complete", "complete", "running"]
    assert [t.values for t in scanned] == [[0.1], [0.2], [0.3], []]


def test_feasible_means_one_thing(engine, study):
    met, broken, untold, running = [t for p in trial_scan.scan_trials(engine, "records") for t in p]
    assert (met.feasible, broken.feasible, untold.feasible, running.feasible) == (
        True,
        False,
        None,
        None,
    )
    # Optuna's reading (its samplers, its best trial): no constraint values is feasible.
    assert [t.counts_as_feasible for t in (met, broken, untold)] == [True, False, True]
