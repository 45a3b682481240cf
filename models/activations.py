"""The activation layers a config names (`relu`, `gelu`, `tanh`), shared by the MLP and the CNN."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
