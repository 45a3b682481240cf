"""Which device trains: `resolve_device` reads `auto`, `cpu` or `cuda:N` and checks it exists.

Apart from `models.training` (which imports Lightning), so `studyd worker` can refuse a device
that does not exist after importing torch alone: a second, not the seconds Lightning takes.
"""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device string that names no usable device."""


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """`auto` (CUDA if present, else CPU), `cpu`, `cuda` or `cuda:N`, checked to exist."""
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu or cuda:N") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        index = device.index or 0
        if index >= count:
            raise DeviceError(f"device {spec!r} is not available ({count} CUDA device(s) visible)")
        return torch.device("cuda", index)
    raise DeviceError(f"unsupported device {spec!r}: use auto, cpu or cuda:N")
