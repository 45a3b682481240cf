"""Does the answer to "which dropout?" depend on the architecture? mnist1d, MLP vs 1-D CNN.

The same question for both families — no dropout, inverted dropout or Gaussian noise before the
head, and (CNN only) channel-wise dropout at its conv blocks — each at the same fixed training
recipe, replicated over seeds. Reports test accuracy at the last epoch, mean ± 95% CI over seeds,
and each variant's paired difference from `none` (same seeds: same initial weights and shuffles
up to the dropout draws).
Usage: python bench/family_demo.py [--seeds 5] [--epochs 20] [--lr 1e-3] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics

import torch
from scipy import stats

from models.config import ModelConfig, TrainConfig
from models.data import load_dataset
from models.training import evaluate, train_model

FAMILIES = {
    "mlp 256-256": dict(hidden=[256, 256]),
    "cnn 32-32 k5": dict(family="cnn", hidden=[32, 32], arch={"kernel": 5}),
}
VARIANTS = {
    "none": dict(),
    "standard p=0.3 @last_hidden": dict(
        variant="standard", placements=["last_hidden"], rates=[0.3, 0.3]
    ),
    "gaussian p=0.3 @last_hidden": dict(
        variant="gaussian", placements=["last_hidden"], rates=[0.3, 0.3]
    ),
    "standard p=0.1 @conv, channel": dict(
        variant="standard", placements=["conv"], rates=[0.1, 0.1], conv_form="channel"
    ),
}


def _ci(values: list[float]) -> float:
    if len(values) < 2:
        return float("nan")
    return stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    data = load_dataset("mnist1d", data_dir=".")
    train = TrainConfig(epochs=args.epochs, batch_size=128, lr=args.lr)
    print(
        f"mnist1d, {args.epochs} epochs, adam lr {args.lr:g}, batch 128, "
        f"seeds 0..{args.seeds - 1}, load average {os.getloadavg()[0]:.1f}"
    )
    for family, shape in FAMILIES.items():
        extra = {"input_shape": list(data.example_shape)} if "family" in shape else {}
        scores: dict[str, list[float]] = {}
        for name, dropout in VARIANTS.items():
            if "conv" in dropout.get("placements", []) and "family" not in shape:
                continue
            cfg = ModelConfig(
                input_dim=data.input_dim,
                num_classes=data.num_classes,
                **shape,
                **extra,
                **dropout,
            )
            scores[name] = [
                evaluate(
                    train_model(
                        cfg, train.model_copy(update={"seed": s}), data, device="cpu"
                    ).model,
                    data.x_test,
                    data.y_test,
                )[1]
                for s in range(args.seeds)
            ]
        print(f"\n{family}")
        for name, values in scores.items():
            diff = [a - b for a, b in zip(values, scores["none"], strict=True)]
            paired = (
                ""
                if name == "none"
                else f"   vs none {statistics.mean(diff):+.3f} ± {_ci(diff):.3f}"
            )
            print(
                f"  {name:32s} test acc {statistics.mean(values):.3f} ± {_ci(values):.3f}{paired}"
            )


if __name__ == "__main__":
    main()
