"""Per-epoch cost of a model family: `train_model` on one dataset, one CPU thread by default.

Each row trains a few epochs and reports the median epoch's wall time (training steps plus the
validation and train-gap evaluation passes `train_model` runs every epoch), with the MLP of the
d2l reference (784-256-256) as the yardstick on the same data.
Usage: python bench/family_epoch.py [--dataset mnist-5k] [--epochs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics

import torch

from models.config import ModelConfig, TrainConfig
from models.data import load_dataset
from models.training import train_model

ROWS = {
    "mlp 256-256, none": dict(hidden=[256, 256]),
    "cnn 32-32 k3, none": dict(family="cnn", hidden=[32, 32]),
    "cnn 32-32 k3, standard @conv (element)": dict(
        family="cnn", hidden=[32, 32], variant="standard", placements=["conv"], rates=[0.2, 0.2]
    ),
    "cnn 32-32 k3, standard @conv (channel)": dict(
        family="cnn",
        hidden=[32, 32],
        variant="standard",
        placements=["conv"],
        rates=[0.2, 0.2],
        conv_form="channel",
    ),
    "cnn 32-32 k3 fc128, multisample K=4 @last_hidden": dict(
        family="cnn",
        hidden=[32, 32],
        arch={"fc": 128},
        variant="multisample",
        placements=["last_hidden"],
        rates=[0.3, 0.3],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    data = load_dataset(args.dataset, data_dir=os.environ.get("STUDYD_DATA_DIR", "."))
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size)
    print(
        f"{args.dataset}: {len(data.y_train)} training rows, batch {args.batch_size}, "
        f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}"
    )
    for name, extra in ROWS.items():
        shape = {"input_shape": list(data.example_shape)} if "family" in extra else {}
        cfg = ModelConfig(input_dim=data.input_dim, num_classes=data.num_classes, **shape, **extra)
        result = train_model(cfg, train, data, device="cpu")
        seconds = statistics.median(m.seconds for m in result.history)
        print(f"  {name:50s} {seconds:6.2f} s/epoch  (params {result.param_count})")


if __name__ == "__main__":
    main()
