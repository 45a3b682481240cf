"""The built-in `cnn` family: conv blocks, pooling, an optional hidden FC layer, the head.

For an example of shape (C, H, W) (1-D signals: (C, L) or (L,)) the network is one
`nn.Sequential`::

    [input site] → { Conv_i → act → [conv site i] → pool } × depth → flatten
                 → [Linear_fc → act → [hidden/last_hidden site]] → head

Block i has `width[i]` channels and a `kernel`-sized, size-keeping convolution (padding k // 2
for odd k); pooling halves each spatial size while it is at least 2. `fc` = 0 leaves the FC
layer out: the head then reads the flattened conv features, which `hidden` and `last_hidden`
both name. Every site's
module comes from the sites object (`models.sites`), DropConnect and Standout through
`sites.linear` at the fc sites.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from models.activations import ACTIVATIONS

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_POOL = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d}
_POOL |= {("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}


def _pooled(size: int) -> int:
    return size // 2 if size >= 2 else size


def build_cnn(values: Any, input_shape: tuple[int, ...], num_classes: int, sites: Any) -> nn.Module:
    """The network of `values` (`models.families.CnnFields`) as one `nn.Sequential`."""
    layers: list[nn.Module] = []
    shape = list(input_shape)
    if len(shape) == 1:  # a flat signal is one channel
        layers.append(nn.Unflatten(1, (1, shape[0])))
        shape = [1, shape[0]]
    dims = len(shape) - 1
    if dims not in _CONV:
        raise ValueError(f"cnn takes (C, H, W), (C, L) or (L,) examples, not {tuple(input_shape)}")
    act = ACTIVATIONS[values.activation]
    layers.append(sites.dropout("input"))
    channels, spatial = shape[0], shape[1:]
    for i, width in enumerate(values.width):
        k = values.kernel
        layers += [_CONV[dims](channels, width, k, padding=k // 2), act()]
        layers.append(sites.dropout("conv", layer=i))
        spatial = [s + 2 * (k // 2) - k + 1 for s in spatial]
        if all(s >= 2 for s in spatial):
            layers.append(_POOL[values.pool, dims](2))
            spatial = [_pooled(s) for s in spatial]
        channels = width
    layers.append(nn.Flatten())
    features = channels * math.prod(spatial)
    # Without the FC layer the head reads the flattened conv features: both names mean them.
    last = ("hidden", "last_hidden")
    if values.fc:
        layers.append(sites.linear(features, values.fc, activation=act(), makes=last))
        features = values.fc
    layers.append(sites.dropout(last))
    layers.append(sites.linear(features, num_classes, reads=last))
    return nn.Sequential(*layers)
