"""Training runs of `bench.seeds`: each arm is one net per seed, trained by studyd's own path.

Batchable variants (`none`, `standard`, `vanilla`, `gaussian`) train as one stack per variant
with `models.batched.train_batched` (the worker's path); `rdrop` and `multisample` train one
trial at a time with `models.training.train_model`. A seed fixes a trial's initial weights and
its data order, in a stack or alone, so two arms with the same seed differ only in their dropout:
that is what makes the comparisons paired.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from models.batched import train_batched
from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits
from models.training import TrainResult, evaluate, train_model


@dataclass(frozen=True)
class Run:
    """One trained net: accuracies in eval mode on whole splits, and its learning curve."""

    seed: int
    train_acc: float
    val_acc: float
    test_acc: float
    train_losses: tuple[float, ...]  # eval-mode training loss after each epoch
    model: torch.nn.Module

    @property
    def gap(self) -> float:
        """Train − test accuracy: how much of the training set's score does not carry over."""
        return self.train_acc - self.test_acc

    @property
    def val_gap(self) -> float:
        return self.train_acc - self.val_acc


def _run(seed: int, result: TrainResult, data: DatasetSplits) -> Run:
    model = result.model
    # train_model's own train metrics use a sample as large as the validation split; the
    # seeds' claims are about the whole training set, so it is measured here in full.
    _, train_acc = evaluate(model, data.x_train, data.y_train)
    _, test_acc = evaluate(model, data.x_test, data.y_test)
    losses = tuple(m.train_loss for m in result.history)
    return Run(seed, train_acc, result.final.val_acc, test_acc, losses, model)


def train_arms(
    data: DatasetSplits,
    model: ModelConfig,
    train: TrainConfig,
    arms: Sequence[Sequence[float]],
    seeds: Sequence[int],
    device: str,
) -> list[list[Run]]:
    """One stack of len(arms)·len(seeds) trials: `model` with each arm's per-layer rates."""
    cfgs = [(model.model_copy(update={"rates": list(r)}), s) for r in arms for s in seeds]
    results = train_batched(
        [m for m, _ in cfgs],
        [train.model_copy(update={"seed": s}) for _, s in cfgs],
        data,
        device=device,
    )
    runs = [_run(s, r, data) for (_, s), r in zip(cfgs, results, strict=True)]
    n = len(seeds)
    return [runs[i * n : (i + 1) * n] for i in range(len(arms))]


def train_each(
    data: DatasetSplits, model: ModelConfig, train: TrainConfig, seeds: Sequence[int], device: str
) -> list[Run]:
    """One `train_model` run per seed (variants that do not stack: rdrop, multisample)."""
    runs = []
    for seed in seeds:
        result = train_model(model, train.model_copy(update={"seed": seed}), data, device=device)
        runs.append(_run(seed, result, data))
    return runs


def epochs_to_reach(run: Run, loss: float) -> int:
    """Epochs until the eval-mode training loss is first ≤ `loss`; epochs + 1 if never."""
    for epoch, value in enumerate(run.train_losses, start=1):
        if value <= loss:
            return epoch
    return len(run.train_losses) + 1


def paired(a: Sequence[Run], b: Sequence[Run], metric, scale: float = 100.0) -> list[float]:
    """scale·(metric(a_s) − metric(b_s)) for each seed s (both arms in the same seed order)."""
    assert [r.seed for r in a] == [r.seed for r in b], "arms must be paired by seed"
    return [scale * (metric(x) - metric(y)) for x, y in zip(a, b, strict=True)]


def mean_sd(values: Sequence[float]) -> str:
    """`mean±sd` over seeds, three decimals (accuracies are fractions)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f}±{sd:.3f}"


def describe(label: str, runs: Sequence[Run], *fields: str) -> str:
    """'label train 1.000±0.000 val 0.346±0.012' for the named `Run` fields."""
    parts = [f"{f} {mean_sd([getattr(r, f) for r in runs])}" for f in fields]
    return f"{label}: " + " ".join(parts).replace("_acc", "")
