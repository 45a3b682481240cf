"""Two workers proposing one run at once: the lower trial counts, the higher waits for it and
takes its result as a repeat (`outcomes.settled_twin`), on a real Optuna storage of each backend."""

from __future__ import annotations

import threading
import time

import optuna
from optuna.trial import TrialState

from storage import trial_store
from storage.sql_store import SqlWorkerStore
from studyd.daemon.worker.repeats import settled_twin


def _study(backend) -> optuna.Study:
    _, storage = backend
    return optuna.create_study(storage=storage, study_name=f"twins-{time.time_ns()}")


def _asked(study: optuna.Study, run_key: str, **attrs) -> optuna.Trial:
    trial = study.ask()
    trial.set_user_attr("run_key", run_key)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial


def _settled(study: optuna.Study, trial: optuna.Trial, stop=lambda: False):
    store = SqlWorkerStore(None, study._storage)  # only its Optuna half is used
    return settled_twin(
        store, study, trial, interrupted=stop, read=lambda t: store.read_back(study, t)
    )


def test_a_trial_waits_for_the_lower_trial_of_its_run_and_takes_its_result(backend):
    study = _study(backend)
    lower = _asked(study, "run-a")
    higher = _asked(study, "run-a")

    def finish_lower() -> None:
        time.sleep(0.6)
        lower.set_user_attr("val_acc", 0.75)
        study.tell(lower, 0.75)

    teller = threading.Thread(target=finish_lower)
    started = time.monotonic()
    teller.start()
    taken = _settled(study, higher)
    teller.join()
    assert time.monotonic() - started >= 0.5  # it waited for the lower trial to finish
    assert taken is not None
    assert taken["reused_from"] == lower.number and taken["val_acc"] == 0.75
    # The lower trial itself has no lower twin: it counts.
    assert _settled(study, lower) is None


def test_no_twin_when_the_lower_trial_of_the_run_ends_pruned_or_is_another_run(backend):
    study = _study(backend)
    pruned = _asked(study, "run-a")
    other = _asked(study, "run-b")
    higher = _asked(study, "run-a")
    study.tell(pruned, state=TrialState.PRUNED)
    study.tell(other, 0.5)
    assert _settled(study, higher) is None


def test_a_seed_replicate_always_counts(backend):
    study = _study(backend)
    lower = _asked(study, "run-a")
    study.tell(lower, 0.5)
    replicate = _asked(study, "run-a", replicate_of=lower.number)
    assert _settled(study, replicate) is None


def test_a_stopped_worker_marks_its_trial_a_repeat_of_the_running_lower_one(backend):
    study = _study(backend)
    lower = _asked(study, "run-a")
    higher = _asked(study, "run-a")
    taken = _settled(study, higher, stop=lambda: True)
    assert taken == {"duplicate_of": lower.number}
    assert trial_store.read_back(study, lower).state == TrialState.RUNNING


def test_a_higher_trial_that_completed_first_is_the_runs_counted_trial(backend):
    # The higher trial looked for a lower twin before the lower one's run was recorded (asked,
    # not yet configured), so it counted; the lower one, trained after, is the repeat.
    study = _study(backend)
    lower = study.ask()
    higher = _asked(study, "run-a")
    higher.set_user_attr("val_acc", 0.7)
    study.tell(higher, 0.7)
    lower.set_user_attr("run_key", "run-a")
    taken = _settled(study, lower)
    assert taken is not None and taken["reused_from"] == higher.number


def test_a_worker_stopped_as_the_lower_trial_completes_takes_its_result(backend):
    # The study ends when the lower trial completes, and that ending stops this worker: the
    # lower trial's result exists by then, and the repeat is told it, not its own.
    study = _study(backend)
    lower = _asked(study, "run-a")
    higher = _asked(study, "run-a")

    def stop() -> bool:
        if trial_store.read_back(study, lower).state == TrialState.RUNNING:
            lower.set_user_attr("val_acc", 0.75)
            study.tell(lower, 0.75)
        return True

    taken = _settled(study, higher, stop=stop)
    assert taken is not None
    assert taken["reused_from"] == lower.number and taken["val_acc"] == 0.75
