"""`train_model`: one trial's training run, the hot path of the service.

Lightning Fabric drives the loop (device placement, precision, backward) around the
`DropoutClassifier`'s `training_step` and `configure_optimizers`. On `digits` (20 epochs, 2
shared CPU cores) a Lightning Trainer cost +43…62% wall time over a bare torch loop (its per-step
hooks ≈0.5–2 ms on a ≈1–3 ms step), Fabric +6…11% (≈15 ms per trial to set up); see
bench/overhead.py. The data stay whole on the device: each epoch
permutes the training tensors once and slices contiguous batches, and metrics are summed on the
device and read once per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits
from models.devices import DeviceError, resolve_device  # noqa: F401 - re-exported
from models.mlp import count_parameters
from models.module import DropoutClassifier

EVAL_CHUNK = 8192
# Seed of the fixed sample of training rows that train metrics are measured on (eval mode).
GAP_SAMPLE_SEED = 0


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's losses and accuracies.

    Train metrics are measured in eval mode on `gap_sample`'s fixed training rows (as many as the
    validation split has), unless `train_metrics="running"` (the training batches' own sums).
    """

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class TrainResult:
    """A finished run: the trained `DropoutClassifier` (eval mode) and its learning curve."""

    model: DropoutClassifier
    history: list[EpochMetrics] = field(default_factory=list)
    stopped_early: bool = False
    param_count: int = 0
    device: str = "cpu"
    diverged: bool = False

    @property
    def final(self) -> EpochMetrics:
        return self.history[-1]


@torch.no_grad()
def loss_correct_sums(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """[summed cross-entropy, correct count] on the device, in eval mode, in large chunks."""
    sums = torch.zeros(2, device=x.device)
    for start in range(0, len(x), EVAL_CHUNK):
        logits = model(x[start : start + EVAL_CHUNK])
        target = y[start : start + EVAL_CHUNK]
        sums[0] += F.cross_entropy(logits, target, reduction="sum")
        sums[1] += (logits.argmax(-1) == target).sum()
    return sums


def gap_sample(n_train: int, n_val: int, device: torch.device | str) -> Tensor | None:
    """Indices of the training rows the train metrics are measured on; None for all of them.

    As many rows as the validation split, drawn once (seed `GAP_SAMPLE_SEED`), the same for every
    epoch and trial: the generalisation gap train − val then has equal precision on both sides,
    and the extra eval pass per epoch costs a validation pass instead of a pass over the whole
    training split (12× less on a 60000-row split with 5000 validation rows).
    """
    if n_train <= n_val:
        return None
    generator = torch.Generator().manual_seed(GAP_SAMPLE_SEED)
    rows = torch.randperm(n_train, generator=generator)[:n_val].sort().values
    return rows.to(device)


def gap_split(splits: DatasetSplits) -> tuple[Tensor, Tensor]:
    """(x, y) of `gap_sample`'s training rows, on the splits' device."""
    rows = gap_sample(len(splits.y_train), len(splits.y_val), splits.x_train.device)
    if rows is None:
        return splits.x_train, splits.y_train
    return splits.x_train[rows], splits.y_train[rows]


def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode on (x, y)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        loss_sum, correct = loss_correct_sums(model, x.to(device), y.to(device)).tolist()
    finally:
        model.train(was_training)
    return loss_sum / len(y), correct / len(y)


def _fabric_for(device: torch.device) -> L.Fabric:
    if device.type == "cuda":
        return L.Fabric(accelerator="cuda", devices=[device.index or 0])
    return L.Fabric(accelerator="cpu", devices=1)


def train_model(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: DatasetSplits,
    *,
    device: str | torch.device = "auto",
    on_epoch: Callable[[EpochMetrics], bool] | None = None,
    interrupt: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train one network; `on_epoch(metrics)` runs after each validation, True stops the run;
    `interrupt()`, asked between batches, True abandons the epoch under way (a cancel must not
    wait for the end of a large network's epoch).

    Deterministic under `train_cfg.seed`: weights, shuffling and dropout masks all come from
    torch generators seeded here; the caller's torch RNG state is restored afterwards.
    """
    if model_cfg.input_dim != data.input_dim or model_cfg.num_classes < data.num_classes:
        raise ValueError(
            f"model expects {model_cfg.input_dim} features and {model_cfg.num_classes} classes; "
            f"{data.name} has {data.input_dim} features and {data.num_classes} classes"
        )
    target = resolve_device(device)
    fork = [target.index or 0] if target.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(train_cfg.seed)
        return _fit(model_cfg, train_cfg, data, target, on_epoch, interrupt)


def _fit(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: DatasetSplits,
    target: torch.device,
    on_epoch: Callable[[EpochMetrics], bool] | None,
    interrupt: Callable[[], bool] | None = None,
) -> TrainResult:
    fabric = _fabric_for(target)
    module = DropoutClassifier(model_cfg, train_cfg)
    optimizer = module.configure_optimizers()
    model, optimizer = fabric.setup(module, optimizer)
    splits = data.to(fabric.device)
    shuffle = torch.Generator(device=fabric.device).manual_seed(train_cfg.seed)
    n, bs = len(splits.y_train), train_cfg.batch_size
    running = train_cfg.train_metrics == "running"
    x_gap, y_gap = gap_split(splits)
    result = TrainResult(module, param_count=count_parameters(module), device=str(fabric.device))

    for epoch in range(train_cfg.epochs):
        started = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=shuffle, device=fabric.device)
        x_epoch, y_epoch = splits.x_train[perm], splits.y_train[perm]
        for start in range(0, n, bs):
            if interrupt is not None and interrupt():
                result.stopped_early = True
                module.eval()
                return result
            loss = model.training_step(
                (x_epoch[start : start + bs], y_epoch[start : start + bs]), 0
            )
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
        model.eval()
        sums = [loss_correct_sums(module, splits.x_val, splits.y_val)]
        if not running:
            sums.append(loss_correct_sums(module, x_gap, y_gap))
        values = torch.cat(sums).tolist()  # the epoch's one device sync
        val_loss, val_acc = values[0] / len(splits.y_val), values[1] / len(splits.y_val)
        if running:
            train_loss, train_acc = module.pop_epoch_metrics("train")
        else:
            train_loss, train_acc = values[2] / len(y_gap), values[3] / len(y_gap)
        metrics = EpochMetrics(
            epoch, train_loss, train_acc, val_loss, val_acc, time.perf_counter() - started
        )
        result.history.append(metrics)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            result.diverged = True
            result.stopped_early = epoch + 1 < train_cfg.epochs
            break
        if on_epoch is not None and on_epoch(metrics):
            result.stopped_early = epoch + 1 < train_cfg.epochs
            break
    module.eval()
    return result
