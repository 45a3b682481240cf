"""train_model: real learning on digits for every variant × placement, determinism, stopping."""

from __future__ import annotations

import itertools
import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from models.config import VARIANTS, ModelConfig, TrainConfig
from models.data import DatasetSplits, load_dataset
from models.module import DropoutClassifier
from models.training import (
    DeviceError,
    EpochMetrics,
    evaluate,
    gap_sample,
    resolve_device,
    train_model,
)

PLACEMENT_SETS = [
    ["input"],
    ["hidden"],
    ["pre_activation"],
    ["last_hidden"],
    ["input", "hidden"],
    ["input", "pre_activation", "last_hidden"],
]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> DatasetSplits:
    return load_dataset("digits", data_dir=tmp_path_factory.mktemp("data"), seed=0)


def _model(variant: str = "standard", placements=("hidden",), **extra) -> ModelConfig:
    base = dict(
        input_dim=64,
        num_classes=10,
        hidden=[128, 64],
        variant=variant,
        placements=list(placements),
        rates=[0.2, 0.3],
        input_rate=0.1,
        # Ba & Frey's tied β weighs the sum of a layer's inputs (models/variants.py): 0.05 keeps
        # most units of a ReLU layer (its inputs sum to tens) and learns in a few epochs; the old
        # untied 1.0 saturates π on the input site (val .65).
        standout_beta=0.05,
    )
    base.update(extra)
    return ModelConfig(**base)


FAST = TrainConfig(epochs=8, batch_size=64, lr=3e-3, seed=0)


# 48 trainings of 8 epochs, ~6 s of CPU each: the full suite's, not the fast layer's.
@pytest.mark.slow
@pytest.mark.parametrize(
    "variant,placements", list(itertools.product(VARIANTS, PLACEMENT_SETS)), ids=str
)
def test_every_variant_and_placement_reaches_90_percent_on_digits(digits, variant, placements):
    result = train_model(_model(variant, placements), FAST, digits, device="cpu")
    assert len(result.history) == FAST.epochs
    assert result.final.val_acc >= 0.90, result.final
    assert result.final.train_loss < result.history[0].train_loss  # it learned, not luck
    assert evaluate(result.model, digits.x_test, digits.y_test)[1] >= 0.85


def test_training_is_deterministic_under_the_seed_and_changes_with_it(digits):
    cfg = _model("rdrop", ["input", "hidden"])
    a = train_model(cfg, FAST.model_copy(update={"epochs": 3}), digits, device="cpu")
    b = train_model(cfg, FAST.model_copy(update={"epochs": 3}), digits, device="cpu")
    c = train_model(cfg, FAST.model_copy(update={"epochs": 3, "seed": 1}), digits, device="cpu")

    def curve(r):
        return [(m.train_loss, m.val_loss, m.val_acc) for m in r.history]

    assert curve(a) == curve(b)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert curve(a) != curve(c)


def test_train_model_leaves_the_callers_torch_rng_untouched(digits):
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    train_model(_model(), FAST.model_copy(update={"epochs": 1}), digits, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)


def test_on_epoch_sees_each_epoch_and_true_stops_the_run(digits):
    seen: list[EpochMetrics] = []

    def prune_at_second(metrics: EpochMetrics) -> bool:
        seen.append(metrics)
        return metrics.epoch == 1

    result = train_model(_model(), FAST, digits, device="cpu", on_epoch=prune_at_second)
    assert [m.epoch for m in seen] == [0, 1]
    assert result.history == seen and result.stopped_early
    assert result.param_count == (64 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10)
    assert result.device == "cpu" and not result.model.training


def test_eval_train_metrics_match_evaluate_on_the_gap_sample(digits):
    result = train_model(_model(), FAST.model_copy(update={"epochs": 2}), digits, device="cpu")
    rows = gap_sample(len(digits.y_train), len(digits.y_val), "cpu")
    # As many training rows as validation rows, each once, the same every call.
    assert len(rows) == len(digits.y_val) < len(digits.y_train)
    assert len(rows.unique()) == len(rows)
    assert torch.equal(rows, gap_sample(len(digits.y_train), len(digits.y_val), "cpu"))
    loss, acc = evaluate(result.model, digits.x_train[rows], digits.y_train[rows])
    assert math.isclose(result.final.train_loss, loss, rel_tol=1e-4)
    assert result.final.train_acc == acc
    val_loss, val_acc = evaluate(result.model, digits.x_val, digits.y_val)
    assert math.isclose(result.final.val_loss, val_loss, rel_tol=1e-4)
    assert result.final.val_acc == val_acc


def test_running_train_metrics_average_the_epoch_with_dropout_on(digits):
    cfg = _model(rates=[0.6, 0.6])
    train = FAST.model_copy(update={"epochs": 3, "train_metrics": "running"})
    result = train_model(cfg, train, digits, device="cpu")
    eval_loss, _ = evaluate(result.model, digits.x_train, digits.y_train)
    assert 0.0 < result.final.train_acc < 1.0
    assert result.final.train_loss > eval_loss  # the noisy network fits worse than its mean


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizers_learn_and_carry_lr_and_weight_decay(digits, optimizer):
    train = TrainConfig(
        epochs=4,
        batch_size=32,
        optimizer=optimizer,
        lr=0.05 if optimizer == "sgd" else 3e-3,
        weight_decay=1e-4,
    )
    opt = DropoutClassifier(_model(), train).configure_optimizers()
    assert opt.param_groups[0]["lr"] == train.lr
    assert opt.param_groups[0]["weight_decay"] == 1e-4
    assert train_model(_model(), train, digits, device="cpu").final.val_acc >= 0.9


def test_diverging_run_stops_and_says_so(digits):
    train = TrainConfig(epochs=5, optimizer="sgd", lr=1e6, momentum=0.9)
    result = train_model(_model(), train, digits, device="cpu")
    assert result.diverged and result.stopped_early and len(result.history) < 5


def test_config_that_does_not_fit_the_data_is_refused(digits):
    with pytest.raises(ValueError, match="features"):
        train_model(_model(input_dim=65), FAST, digits, device="cpu")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda"}
    with pytest.raises(DeviceError, match="not available"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(DeviceError):
        resolve_device("tpu")


def test_classifier_trains_and_logs_epoch_metrics_under_a_lightning_trainer(digits):
    module = DropoutClassifier(_model(), FAST.model_copy(update={"train_metrics": "running"}))
    batches = DataLoader(TensorDataset(digits.x_train, digits.y_train), batch_size=64)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    val = DataLoader(TensorDataset(digits.x_val, digits.y_val), batch_size=1024)
    trainer.fit(module, batches, val)
    metrics = trainer.callback_metrics
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(metrics)
    assert metrics["val_acc"] > 0.8
