"""What `bench.seeds`' claims measure beyond accuracies: agreement, two-pass KL, Monte-Carlo
expectations of the scaling rules, torch ops per eval forward, and mean±sd formatting."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.overrides import TorchFunctionMode

from bench.seed_runs import Run
from models.config import ModelConfig
from models.data import DatasetSplits
from models.mlp import build_mlp
from models.objectives import symmetric_kl


def ms(runs: Sequence[Run], metric) -> str:
    return msv([metric(r) for r in runs])


def msv(values: Sequence[float], digits: int = 3) -> str:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
    return f"{mean:.{digits}f}±{sd:.{digits}f}"


@torch.no_grad()
def prediction_agreement(a: Sequence[Run], b: Sequence[Run], data: DatasetSplits) -> float:
    """Mean fraction of test examples on which the paired nets predict the same class."""
    same = [
        (x.model(data.x_test).argmax(-1) == y.model(data.x_test).argmax(-1)).float().mean().item()
        for x, y in zip(a, b, strict=True)
    ]
    return sum(same) / len(same)


@torch.no_grad()
def two_pass_kl(run: Run, data: DatasetSplits, seed: int) -> float:
    """Symmetric KL between two training-mode (dropout on) passes over the test set."""
    net = run.model.net
    net.train()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            out = net(data.x_test.to(next(net.parameters()).device), samples=2)
        return float(symmetric_kl(out[0], out[1]))
    finally:
        net.eval()


@torch.no_grad()
def expectation_error(module: torch.nn.Module, seed: int, draws: int = 200) -> float:
    """mean over draws of the training output's total / the eval output's total, minus 1."""
    # x's stream must not be the masks' (same seed, same generator type): the first mask would
    # be u ≥ p on x's own uniforms, keeping exactly the large activations.
    generator = torch.Generator().manual_seed(10_000 + seed)  # MT19937 keeps 32 bits of a seed
    x = torch.rand(256, 512, generator=generator) + 0.5  # positive, like post-ReLU activations
    module.eval()
    test = module(x).double().sum()
    module.train()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        # In float64: a float32 running total of 200 × 131 072 activations drifts by ~0.1 %.
        train = torch.stack([module(x).double().sum() for _ in range(draws)]).mean()
    return float(train / test - 1.0)


class _OpCounter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def eval_ops(variant: str, p: float) -> int:
    """torch calls in one eval-mode forward of a 40-256-256-10 net with `variant` at rate p."""
    cfg = ModelConfig(
        input_dim=40,
        num_classes=10,
        hidden=[256, 256],
        variant=variant,
        rates=[p, p] if variant != "none" else [],
    )
    net = build_mlp(cfg).eval()
    x = torch.zeros(8, 40)
    with _OpCounter() as counter:
        net(x)
    return counter.calls
