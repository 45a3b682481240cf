"""A trained network as one file: its weights and the configs that rebuild it.

    saved = load_saved("model.pt")           # a path or an open binary file
    logits = saved.net(torch.as_tensor(x, dtype=torch.float32))
    predicted = logits.argmax(dim=1)

The file is a `torch.save`d dict of tensors and plain values only, so `torch.load(...,
weights_only=True)` reads it: loading runs no pickled code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from models.config import ModelConfig, TrainConfig
from models.sites import build_model

FORMAT = "studyd-model/1"


@dataclass(frozen=True)
class SavedModel:
    """The rebuilt network in eval mode, its configs, and what was recorded with it."""

    net: nn.Module
    model_config: ModelConfig
    train_config: TrainConfig
    info: dict[str, Any]


def model_bytes(
    net: nn.Module, model_cfg: ModelConfig, train_cfg: TrainConfig, **info: Any
) -> bytes:
    """The file's bytes; `info` holds plain values (the study, trial, test score)."""
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "model_config": model_cfg.model_dump(mode="json"),
        "train_config": train_cfg.model_dump(mode="json"),
        "info": info,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_saved(source: str | Path | BinaryIO) -> SavedModel:
    """Rebuild the network a `model_bytes` file describes (CPU, eval mode)."""
    payload = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} file")
    model_cfg = ModelConfig.model_validate(payload["model_config"])
    net = build_model(model_cfg)  # any family; the mlp is build_mlp's
    net.load_state_dict(payload["state_dict"])
    net.eval()
    train_cfg = TrainConfig.model_validate(payload["train_config"])
    return SavedModel(net, model_cfg, train_cfg, dict(payload.get("info") or {}))
