"""Per-epoch cost of DropConnect against plain dropout, and where it goes (train vs evaluation).

One network (`train_model`) and a stack of 4 (`train_batched`), hidden [128, 128], batch 64, on
`digits`; DropConnect at each value of `dropconnect_samples` given (Z = 0 is the W·(1−p) rule,
Z > 0 the paper's Gaussian inference at evaluation). Prints the median epoch time over --epochs
epochs (the first, warm-up, dropped) and the evaluation's share, measured by timing one
evaluation pass over the validation and train-gap rows.
Usage: python -m bench.dropconnect_cost [--epochs 4] [--samples 0 16 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from models.batched import evaluate_stack, train_batched
from models.config import ModelConfig, TrainConfig
from models.data import load_dataset
from models.training import gap_split, train_model

WIDTH, BATCH, STACK = 128, 64, 4


def _configs(data, variant: str, samples: int | None) -> ModelConfig:
    knobs = {} if samples is None else {"dropconnect_samples": samples}
    return ModelConfig(
        input_dim=data.input_dim,
        num_classes=int(data.y_train.max()) + 1,
        hidden=[WIDTH, WIDTH],
        variant=variant,
        placements=["hidden"],
        rates=[0.5, 0.5],
        **knobs,
    )


def _median_epoch(history) -> float:
    return statistics.median(m.seconds for m in history[1:])


def _eval_seconds(model_cfg, train_cfg, data) -> float:
    """One evaluation of a stack of one over the validation and gap rows (what an epoch adds)."""
    from models.batched import StackedMLP

    stack = StackedMLP.from_configs([model_cfg], [train_cfg.seed])
    x_gap, y_gap = gap_split(data)
    started = time.perf_counter()
    evaluate_stack(stack, data.x_val, data.y_val)
    evaluate_stack(stack, x_gap, y_gap)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, nargs="*", default=[0, 16, 100])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument(
        "--threads", type=int, help="torch threads (steadier figures on a busy host)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, data_dir="data", download=False)
    has_samples = "dropconnect_samples" in ModelConfig.model_fields
    runs = [("standard", None)]
    runs += [("dropconnect", z) for z in args.samples] if has_samples else [("dropconnect", None)]
    print(
        f"{args.dataset}: {len(data.y_train)} train rows, hidden [{WIDTH}, {WIDTH}], "
        f"batch {BATCH}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'variant':<12} {'Z':>4} {'single s/epoch':>15} {f'stack of {STACK} s/trial':>20} "
        f"{'eval s':>8}"
    )
    for variant, samples in runs:
        model_cfg = _configs(data, variant, samples)
        train_cfg = TrainConfig(epochs=args.epochs, batch_size=BATCH, seed=0)
        single = train_model(model_cfg, train_cfg, data, device="cpu")
        cfgs = [train_cfg.model_copy(update={"seed": s}) for s in range(STACK)]
        stacked = train_batched([model_cfg] * STACK, cfgs, data, device="cpu")
        z = "-" if samples is None else str(samples)
        print(
            f"{variant:<12} {z:>4} {_median_epoch(single.history):>15.4f} "
            f"{_median_epoch(stacked[0].history):>20.4f} "
            f"{_eval_seconds(model_cfg, train_cfg, data):>8.4f}"
        )


if __name__ == "__main__":
    main()
