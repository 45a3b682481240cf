"""`DropoutClassifier`: the LightningModule that trains any `ModelConfig`."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from models.config import ModelConfig, TrainConfig
from models.sites import build_model
from models.variants import dropout_variant


class DropoutClassifier(L.LightningModule):
    """Cross-entropy classification with the variant's objective (its registry entry's).

    `rdrop` trains on two dropout passes (½·(CE₁ + CE₂ + α·symKL), the paper's α); `multisample`
    on K masks through the shared head (CE averaged over K); every other variant on one pass.
    Metrics are summed on the device during an epoch and read once at its end
    (`pop_epoch_metrics`), so no step waits for the accelerator.
    """

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
        super().__init__()
        self.model_cfg = model_cfg
        self.train_cfg = train_cfg
        self.save_hyperparameters(
            {"model": model_cfg.model_dump(mode="json"), "train": train_cfg.model_dump(mode="json")}
        )
        self.net = build_model(model_cfg)
        self._objective = dropout_variant(model_cfg.variant).objective
        self._knobs = model_cfg.variant_knobs()
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def objective(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(loss to minimise, logits used for the accuracy of this batch)."""
        if self._objective is not None:
            return self._objective(self.net, x, y, self._knobs)
        logits = self.net(x)
        return F.cross_entropy(logits, y), logits

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss, logits = self.objective(x, y)
        if self.train_cfg.train_metrics == "running":
            self.accumulate("train", loss, logits, y)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.accumulate("val", F.cross_entropy(logits, y), logits, y)

    def accumulate(self, split: str, loss: Tensor, logits: Tensor, y: Tensor) -> None:
        """Add a batch's mean loss and correct count to the split's on-device sums."""
        n = y.shape[0]
        correct = (logits.detach().argmax(-1) == y).sum()
        step = torch.stack((loss.detach().float() * n, correct.float()))
        if split in self._sums:
            self._sums[split] += step
            self._counts[split] += n
        else:
            self._sums[split] = step
            self._counts[split] = n

    def pop_epoch_metrics(self, split: str) -> tuple[float, float]:
        """(mean loss, accuracy) of the split since the last pop: one device sync."""
        sums = self._sums.pop(split)
        count = self._counts.pop(split)
        loss_sum, correct = sums.tolist()
        return loss_sum / count, correct / count

    def on_train_epoch_end(self) -> None:
        # Under a Lightning Trainer (train_model drives Fabric and reads the sums itself).
        if "train" in self._sums:
            loss, acc = self.pop_epoch_metrics("train")
            self.log_dict({"train_loss": loss, "train_acc": acc})

    def on_validation_epoch_end(self) -> None:
        if "val" in self._sums:
            loss, acc = self.pop_epoch_metrics("val")
            self.log_dict({"val_loss": loss, "val_acc": acc})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.train_cfg
        params = self.parameters()
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
