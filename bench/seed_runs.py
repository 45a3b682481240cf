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
from models.module import DropoutClassifier
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
    train_loss: float = float("nan")  # eval-mode cross-entropy on the whole split
    test_loss: float = float("nan")

    @property
    def gap(self) -> float:
        """Train − test accuracy: how much of the training set's score does not carry over."""
        return self.train_acc - self.test_acc

    @property
    def val_gap(self) -> float:
        return self.train_acc - self.val_acc

    @property
    def loss_gap(self) -> float:
        """Test − train cross-entropy (nats): the gap read where accuracy saturates."""
        return self.test_loss - self.train_loss


def _run(seed: int, result: TrainResult, data: DatasetSplits) -> Run:
    losses = tuple(m.train_loss for m in result.history)
    return _measured(seed, result.model, data, losses)


def _measured(
    seed: int, model: torch.nn.Module, data: DatasetSplits, losses: tuple[float, ...]
) -> Run:
    # train_model's own train metrics use a sample as large as the validation split; the
    # seeds' claims are about the whole training set, so it is measured here in full.
    train_loss, train_acc = evaluate(model, data.x_train, data.y_train)
    _, val_acc = evaluate(model, data.x_val, data.y_val)
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
    return Run(seed, train_acc, val_acc, test_acc, losses, model, train_loss, test_loss)


def train_arms(
    data: DatasetSplits,
    model: ModelConfig,
    train: TrainConfig,
    arms: Sequence[Sequence[float]],
    seeds: Sequence[int],
    device: str,
    lrs: Sequence[float] | None = None,
) -> list[list[Run]]:
    """One stack of len(arms)·len(seeds) trials: `model` with each arm's per-layer rates (and,
    given `lrs`, each arm's learning rate)."""
    lrs = list(lrs) if lrs is not None else [train.lr] * len(arms)
    cfgs = [
        (
            model.model_copy(update={"rates": list(r)}),
            train.model_copy(update={"seed": s, "lr": lr}),
        )
        for r, lr in zip(arms, lrs, strict=True)
        for s in seeds
    ]
    results = train_batched([m for m, _ in cfgs], [t for _, t in cfgs], data, device=device)
    runs = [_run(t.seed, r, data) for (_, t), r in zip(cfgs, results, strict=True)]
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


def train_rescaled(
    data: DatasetSplits, model: ModelConfig, train: TrainConfig, seed: int, head_scale: float
) -> Run:
    """`train_model`'s steps (same init, data order and masks for `seed`) with the head's initial
    weights and its Adam learning rate multiplied by `head_scale`.

    With dropout only before the head, inverted dropout's head W sees h·m/(1−p); vanilla's head
    W' = W/(1−p) sees h·m: the same function in training and at test (vanilla's ·(1−p)). Adam's
    step does not depend on the gradient's scale, so W' keeps tracking W/(1−p) when its step is
    1/(1−p) larger: vanilla at head_scale = 1/(1−p) is inverted dropout re-parametrised.
    head_scale = 1 is `train_model` itself (tests/bench/test_seeds_run.py checks the weights).
    """
    if train.optimizer != "adam" or train.train_metrics != "eval":
        raise ValueError("train_rescaled re-parametrises Adam only")
    cfg = train.model_copy(update={"seed": seed})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = DropoutClassifier(model, cfg)
        head = module.net.layers[-1]
        with torch.no_grad():
            head.weight.mul_(head_scale)
        rest = [p for p in module.parameters() if p is not head.weight]
        optimizer = torch.optim.Adam(
            [{"params": rest}, {"params": [head.weight], "lr": cfg.lr * head_scale}],
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
        )
        shuffle = torch.Generator().manual_seed(seed)
        n, bs = len(data.y_train), cfg.batch_size
        for _ in range(cfg.epochs):
            module.train()
            perm = torch.randperm(n, generator=shuffle)
            x_epoch, y_epoch = data.x_train[perm], data.y_train[perm]
            for start in range(0, n, bs):
                loss = module.training_step(
                    (x_epoch[start : start + bs], y_epoch[start : start + bs]), 0
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        module.eval()
    return _measured(seed, module, data, ())


def select(candidates: dict[float, list[Run]]) -> float:
    """The candidate value whose runs have the highest mean validation accuracy."""
    return max(candidates, key=lambda v: statistics.fmean(r.val_acc for r in candidates[v]))


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
