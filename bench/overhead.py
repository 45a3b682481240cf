"""Per-trial overhead of `train_model` (Fabric) and of a Lightning Trainer over a bare torch loop.

All three train the same `DropoutClassifier` on the same on-device tensors with the same batch
slicing and seed; the bare loop is the floor. Prints the best of --repeats wall times per trial.
Usage: python bench/overhead.py [--epochs 20] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import lightning as L
import torch

from models.config import ModelConfig, TrainConfig
from models.data import load_dataset
from models.module import DropoutClassifier
from models.training import loss_correct_sums, resolve_device, train_model


class _Batches:
    """Shuffled contiguous slices of whole on-device tensors (the loop train_model runs)."""

    def __init__(self, x, y, batch_size, generator):
        self.x, self.y, self.bs, self.g = x, y, batch_size, generator

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __iter__(self):
        perm = torch.randperm(len(self.x), generator=self.g, device=self.x.device)
        x, y = self.x[perm], self.y[perm]
        for start in range(0, len(x), self.bs):
            yield x[start : start + self.bs], y[start : start + self.bs]


def bare(model_cfg, train_cfg, data, device):
    torch.manual_seed(train_cfg.seed)
    module = DropoutClassifier(model_cfg, train_cfg).to(device)
    opt = module.configure_optimizers()
    g = torch.Generator(device=device).manual_seed(train_cfg.seed)
    for _ in range(train_cfg.epochs):
        module.train()
        for xb, yb in _Batches(data.x_train, data.y_train, train_cfg.batch_size, g):
            loss, _ = module.objective(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        module.eval()
        sums = [loss_correct_sums(module, data.x_val, data.y_val)]
        sums.append(loss_correct_sums(module, data.x_train, data.y_train))
        torch.cat(sums).tolist()


def trainer(model_cfg, train_cfg, data, device):
    torch.manual_seed(train_cfg.seed)
    module = DropoutClassifier(model_cfg, train_cfg.model_copy(update={"train_metrics": "running"}))
    g = torch.Generator(device=device).manual_seed(train_cfg.seed)

    class _Val:
        def __len__(self):
            return 1

        def __iter__(self):
            yield data.x_val, data.y_val

    t = L.Trainer(
        max_epochs=train_cfg.epochs,
        accelerator="cuda" if device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    t.fit(module, _Batches(data.x_train, data.y_train, train_cfg.batch_size, g), _Val())


def fabric(model_cfg, train_cfg, data, device):
    train_model(model_cfg, train_cfg, data, device=device)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, data_dir="data").to(device)
    model_cfg = ModelConfig(
        input_dim=data.input_dim, num_classes=data.num_classes, hidden=[256], variant="standard",
        rates=[0.3],
    )  # fmt: skip
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=128)
    steps = args.epochs * -(-len(data.y_train) // train_cfg.batch_size)
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for fn in (bare, fabric, trainer):
            started = time.perf_counter()
            fn(model_cfg, train_cfg, data, device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            best[fn.__name__] = min(best.get(fn.__name__, float("inf")), elapsed)
    print(f"{args.dataset}, {steps} steps, device {device}, best of {args.repeats}")
    for name, seconds in best.items():
        extra = seconds - best["bare"]
        print(
            f"{name:8s} {seconds * 1000:8.1f} ms/trial  overhead {extra * 1000:+7.1f} ms "
            f"({extra / best['bare']:+.0%}, {extra / steps * 1e6:+.0f} µs/step)"
        )


if __name__ == "__main__":
    main()
