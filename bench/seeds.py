"""Reproduce the seeds' dropout experiments and print them as a table.

(a) cs231n: a 2-hidden-layer net trained on 500 examples of `digits` (scikit-learn's 8×8 digits,
    bundled: no download), with and without dropout, over three seeds: without it the training
    set is memorised (train accuracy ≈ 100%) and the train−val gap is the largest; dropout
    narrows the gap without losing validation accuracy.
(b) d2l: the 784-256-256-10 MLP with dropout 0.2 after the first hidden layer and 0.5 after the
    second (SGD, lr 0.5, batch 256), against the same net without dropout; on fashion-mnist when
    its files are in the data dir, else on mnist1d (40-256-256-10, more epochs: 4000 examples).

Accuracies are in eval mode (train accuracy over the whole training split), as cs231n measures.
Usage: python bench/seeds.py [--data-dir DIR] [--device auto|cpu|cuda:N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from models.config import ModelConfig, TrainConfig
from models.data import DataError, DatasetSplits, load_dataset
from models.training import evaluate, train_model


def _run(label: str, data: DatasetSplits, model: ModelConfig, train: TrainConfig, device: str):
    started = time.perf_counter()
    result = train_model(model, train, data, device=device)
    final = result.final
    _, test_acc = evaluate(result.model, data.x_test, data.y_test)
    return (
        label,
        data.name,
        len(data.y_train),
        final.train_acc,
        final.val_acc,
        final.train_acc - final.val_acc,
        test_acc,
        time.perf_counter() - started,
    )


CS231N_SEEDS = (0, 1, 2)


def cs231n(data: DatasetSplits, device: str) -> list[tuple]:
    rows = []
    for p in (0.0, 0.25, 0.5):
        model = ModelConfig(
            input_dim=data.input_dim,
            num_classes=data.num_classes,
            hidden=[512, 512],
            variant="standard" if p else "none",
            rates=[p, p],
        )
        runs = []
        for seed in CS231N_SEEDS:
            train = TrainConfig(epochs=60, batch_size=100, optimizer="adam", lr=1e-3, seed=seed)
            runs.append(_run(f"(a) cs231n, 500 ex., p={p}", data, model, train, device))
        rows.append(_mean_over_seeds(runs))
    return rows


def _mean_over_seeds(runs: list[tuple]) -> tuple:
    """One row: the label with the seed count, then each number's mean over the seeds."""
    label, name, n = runs[0][:3]
    means = [statistics.fmean(r[i] for r in runs) for i in range(3, len(runs[0]))]
    return (f"{label} ({len(runs)} seeds)", name, n, *means)


def d2l(data: DatasetSplits, device: str) -> list[tuple]:
    epochs = 10 if data.name == "fashion-mnist" else 60
    train = TrainConfig(epochs=epochs, batch_size=256, optimizer="sgd", lr=0.5, momentum=0.0)
    rows = []
    for rates in ([0.0, 0.0], [0.2, 0.5]):
        model = ModelConfig(
            input_dim=data.input_dim,
            num_classes=data.num_classes,
            hidden=[256, 256],
            variant="standard" if any(rates) else "none",
            rates=rates,
        )
        label = f"(b) d2l {data.input_dim}-256-256-10, p={rates[0]}/{rates[1]}"
        rows.append(_run(label, data, model, train, device))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        fashion = load_dataset("fashion-mnist", data_dir=args.data_dir, download=False)
    except DataError:
        fashion = None
    small = fashion or load_dataset("mnist1d", data_dir=args.data_dir)
    rows = cs231n(
        load_dataset("digits", data_dir=args.data_dir, train_subset=500, download=False),
        args.device,
    )
    rows += d2l(small, args.device)
    header = ("experiment", "dataset", "n_train", "train_acc", "val_acc", "gap", "test_acc", "s")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for label, name, n, tr, va, gap, te, sec in rows:
        print(f"{label} | {name} | {n} | {tr:.3f} | {va:.3f} | {gap:+.3f} | {te:.3f} | {sec:.1f}")


if __name__ == "__main__":
    main()
