"""What the largest network a spec allows costs to train: memory, checked at submit.

One request for `model: {width: 8192, depth: 8}` took a worker to 8.6 GB; a spec estimated at
1.77 GB (depth 2 × 8192, batch 3000, mnist-5k) grew a worker by 3.16 GB. The estimate bounds the
growth of a CPU worker's resident memory while it trains (float32, glibc's allocator), in terms
measured on `models.training.train_model` and `models.batched.train_batched`
(tests/studyd/test_footprint.py measures them):

- parameters: weights, gradients, Adam's two moments and the optimizer step's temporaries,
  `PARAM_COPIES` × 4 bytes per parameter (`STACK_PARAM_COPIES` in a stack: its flat buffers);
- activations kept for backward, per hidden unit and example: `ACTIVATION_COPIES[kind]` floats
  (R-Drop's two passes, Multi-Sample's K passes, Standout's keep probabilities);
- DropConnect's per-example masks, up to `models.dropconnect.MASK_BUDGET` elements per masked
  layer: the mask and the masked weights kept for backward, and their gradients;
- evaluation in chunks of `models.training.EVAL_CHUNK` rows, the epoch's shuffled copy of the
  training data, and a fixed allowance for the rest;
- on top of one training, what a worker holds beside it: `WORKER_PARAM_COPIES` more per
  parameter. The spec above peaked at 1.76 GB inside `train_model` (measured here) but grew its
  worker by 3.16 GB: 1.4 GB more, 4.8 copies of its 73.6 M parameters.

A worker may train a stack of trials at once when they share an architecture.

Conv families (`cnn`, plugins) keep feature maps, not vectors: per example, a conv layer's
output is channels × spatial units, and training keeps `CONV_ACTIVATION_COPIES` floats of each
(conv output, activation, the site's mask and output, pooling); evaluation holds
`CONV_EVAL_COPIES` of the largest layer per row of a chunk. `cnn`'s layers are computed from its
fields and the data's example shape (a user file's is not known at submit: it is taken as a 1-D
signal, which pools least and so is the larger). A plugin's network is not known here: each of
its depth units is sized as two full-resolution conv layers of its width that never pool
(an upper bound for the usual conv block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from models.families import model_family
from models.variants import dropout_variant
from studyd.spec.dims import Dim
from studyd.spec.study import StudySpec

BYTES_PER_FLOAT = 4
# `studyd worker --batch-trials auto` stacks up to this many trials on a CPU when two stacks'
# worth share an architecture (studyd.daemon.worker.AUTO_CPU_TRIALS); on a GPU it sizes the
# stack by free memory instead.
STACK_TRIALS = 8
# Features, classes, training and validation rows of the bundled datasets (user files: features
# read from the file at submit; their rows are not known there).
# One example's shape, channels first, as a conv family sees it (models.data.example_shape).
EXAMPLE_SHAPES: dict[str, tuple[int, ...]] = {
    "digits": (1, 8, 8),
    "mnist1d": (1, 40),
    "mnist-5k": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
}
BUILTIN_SHAPES: dict[str, tuple[int, int, int, int]] = {
    "digits": (64, 10, 1078, 360),
    "mnist1d": (40, 10, 3000, 1000),
    "mnist-5k": (784, 10, 3000, 1000),
    "fashion-mnist": (784, 10, 48000, 12000),
}
# The coefficients below were fitted to peaks measured on a 2-core CPU (PyTorch 2, glibc):
# depth 1-3 × width 512-2048 × batch 512-4096, every kind of variant, stacks of 4. With them the
# estimate was 1.0-1.6× the measured growth.
PARAM_COPIES = 7.0
STACK_PARAM_COPIES = 15.0
ACTIVATION_COPIES: dict[str, float] = {
    "nothing": 2.5,  # Linear inputs and activation outputs
    "activations": 3.5,  # + each site's mask and masked output
    "units": 6.0,  # Standout: + the keep probabilities and their own pre-activations
    "weights": 2.5,  # DropConnect: its masks are counted apart
}
# Two dropout passes, each kept for backward. 8.0 put 3 × 512, batch 4096 (17 MB blocks on glibc's
# heap, as Multi-Sample's below) at 1.02-1.18 of its measured 224-258 MB over three allocation
# histories (2026-12-08); 9.0 keeps a margin.
RDROP_ACTIVATION_COPIES = 9.0
# K passes through the network, each kept for backward: per pass, by the size of one K-fold
# activation (K × batch × width floats). glibc mmaps blocks over its dynamic threshold's ceiling
# (32 MiB on 64-bit) and unmaps them when freed; smaller ones stay on its heap, where freed blocks
# are reused in pieces and the peak runs higher. With 2.5 for both, 3 × 512, batch 1024, K = 8
# (17 MB blocks) was estimated at 0.87-0.98 of its measured 205-262 MB; 2 × 2048, batch 512, K = 8
# (34 MB blocks) at 1.68 of its 235 MB.
MULTISAMPLE_COPIES_PER_PASS = 2.5
MULTISAMPLE_HEAP_COPIES_PER_PASS = 4.0
GLIBC_MMAP_CEILING = 32 * 1024 * 1024
DROPCONNECT_HIDDEN_COPIES = 3.0  # mask, masked weights and their gradient, per mask element
DROPCONNECT_HEAD_COPIES = 2.0  # the head has no activation to keep
EVAL_COPIES = 2.0  # two activations alive at once in an evaluation chunk
# Conv families, per unit of a layer's output (fitted as above on `cnn`: 28×28 images, 1-D
# signals of 40, 8×8 images; tests/studyd/test_footprint.py's CNN_GRID).
CONV_ACTIVATION_COPIES = 6.0  # activation noise: conv and activation outputs, mask, pooling
CONV_PLAIN_COPIES = 4.3  # no noise on the maps (none, DropConnect at the head)
CONV_RDROP_COPIES = 7.5  # two passes kept for backward (measured below 2 × plain)
CONV_MULTISAMPLE_SHARE = 0.5  # K passes from the first site on: the first block runs once
CONV_EVAL_COPIES = 3.0
PLUGIN_CONVS_PER_UNIT = 2
PLUGIN_KERNEL = 3
WORKER_PARAM_COPIES = 5.0
ALLOWANCE_BYTES = 16 * 10**6
EVAL_CHUNK = 8192  # models.training.EVAL_CHUNK
MASK_BUDGET = 1 << 24  # models.dropconnect.MASK_BUDGET


@dataclass(frozen=True)
class Network:
    """One network a worker may train: its shape, batch, variant and the data around it."""

    depth: int
    width: int
    batch_size: int
    variant: str
    input_dim: int
    classes: int = 10
    train_rows: int = 0
    val_rows: int = EVAL_CHUNK
    multisample_k: int = 1
    # Linears DropConnect masks: 0 … depth-1 are hidden layers, `depth` the head.
    masked_linears: tuple[int, ...] = ()
    stack: int = 1
    # A conv family: its name, one example's shape (channels first), the hidden FC layer's
    # units and the kernel (cnn's fields).
    family: str = "mlp"
    example_shape: tuple[int, ...] = ()
    fc: int = 0
    kernel: int = 3


@dataclass(frozen=True)
class ConvLayer:
    """One layer of a conv family: its output units per example and its parameters."""

    units: int
    parameters: int


@dataclass(frozen=True)
class Footprint:
    """The worst case: the largest network, its batch, how many train at once, and the bytes."""

    depth: int
    width: int
    batch_size: int
    input_dim: int
    classes: int
    stack: int
    parameter_bytes: int
    activation_bytes: int
    shared_bytes: int = 0  # evaluation, the data's copy and the allowance: once per worker
    worker_bytes: int = 0  # what the worker holds beside the training
    family: str = "mlp"

    @property
    def network(self) -> str:
        """The network in words: `2 hidden layers of 8192 units`, `2 conv blocks of 64 …`."""
        if self.family == "mlp":
            return f"{self.depth} hidden layers of {self.width} units"
        if self.family == "cnn":
            return f"{self.depth} conv blocks of {self.width} channels"
        return f"{self.family}: depth {self.depth}, width {self.width}"

    @property
    def training_bytes(self) -> int:
        """The peak growth of training the stack (`train_model`, `train_batched`)."""
        return self.stack * (self.parameter_bytes + self.activation_bytes) + self.shared_bytes

    @property
    def total_bytes(self) -> int:
        return self.training_bytes + self.worker_bytes

    @property
    def field(self) -> str:
        """The spec field to shrink first: the larger of the two terms."""
        return (
            "model.width"
            if self.parameter_bytes >= self.activation_bytes
            else "training.batch_size"
        )


def conv_layers(net: Network) -> list[ConvLayer]:
    """The layers of a conv family's network (`models.cnn.build_cnn`'s, a plugin's bound)."""
    shape = list(net.example_shape) or [1, net.input_dim]
    channels, spatial = shape[0], shape[1:]
    plugin = net.family != "cnn"
    kernel = PLUGIN_KERNEL if plugin else net.kernel
    layers = []
    for _ in range(net.depth):
        for _ in range(PLUGIN_CONVS_PER_UNIT if plugin else 1):
            weights = channels * net.width * kernel ** len(spatial) + net.width
            layers.append(ConvLayer(net.width * math.prod(spatial), weights))
            channels = net.width
        if not plugin and all(s >= 2 for s in spatial):
            spatial = [s // 2 for s in spatial]
    features = channels * math.prod(spatial)
    if net.fc:
        layers.append(ConvLayer(net.fc, features * net.fc + net.fc))
        features = net.fc
    layers.append(ConvLayer(net.classes, features * net.classes + net.classes))
    return layers


def parameters(net: Network) -> int:
    if net.family != "mlp":
        return sum(layer.parameters for layer in conv_layers(net))
    widths = [net.input_dim, *[net.width] * net.depth, net.classes]
    return sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))


def _conv_copies(net: Network) -> float:
    """Floats kept for backward per unit of a conv family's layer outputs."""
    if net.variant == "rdrop":
        return CONV_RDROP_COPIES
    noisy = dropout_variant(net.variant).acts_on in ("activations", "units")
    copies = CONV_ACTIVATION_COPIES if noisy else CONV_PLAIN_COPIES
    if net.variant == "multisample":
        copies *= 1 + CONV_MULTISAMPLE_SHARE * net.multisample_k
    return copies


def _units(net: Network) -> tuple[float, float]:
    """Activation floats kept for backward per example, and the floats an evaluation chunk
    holds per row (copies of the widest layer)."""
    if net.family == "mlp":
        return _activation_copies(net) * net.width * net.depth, EVAL_COPIES * net.width
    layers = conv_layers(net)
    copies = _conv_copies(net)
    widest = max(layer.units for layer in layers)
    return copies * sum(layer.units for layer in layers), CONV_EVAL_COPIES * widest


def _activation_copies(net: Network) -> float:
    if net.variant == "rdrop":
        return RDROP_ACTIVATION_COPIES
    acts_on = dropout_variant(net.variant).acts_on
    copies = ACTIVATION_COPIES.get(acts_on, ACTIVATION_COPIES["activations"])
    if net.variant == "multisample":
        block = BYTES_PER_FLOAT * net.multisample_k * net.batch_size * net.width
        per_pass = (
            MULTISAMPLE_COPIES_PER_PASS
            if block >= GLIBC_MMAP_CEILING
            else MULTISAMPLE_HEAP_COPIES_PER_PASS
        )
        copies += per_pass * net.multisample_k
    return copies


def _mask_elements(net: Network) -> float:
    """DropConnect's mask elements, weighted: a masked layer holds min(batch, budget) masks."""
    if net.family != "mlp" and net.masked_linears:
        # A conv family's Linears are its FC layer and head: both counted as masked.
        *fc, head = [layer.parameters for layer in conv_layers(net)[-2 if net.fc else -1 :]]
        sized = [(n, DROPCONNECT_HIDDEN_COPIES) for n in fc] + [(head, DROPCONNECT_HEAD_COPIES)]
        return sum(c * max(1, min(net.batch_size, MASK_BUDGET // n)) * n for n, c in sized)
    widths = [net.input_dim, *[net.width] * net.depth, net.classes]
    total = 0.0
    for layer in net.masked_linears:
        n_in, n_out = widths[layer], widths[layer + 1]
        masks = max(1, min(net.batch_size, MASK_BUDGET // (n_in * n_out)))
        head = layer == net.depth
        copies = DROPCONNECT_HEAD_COPIES if head else DROPCONNECT_HIDDEN_COPIES
        total += copies * masks * n_in * n_out
    return total


def network_footprint(net: Network) -> Footprint:
    """The memory training `net` grows a worker by, at most (see the module docstring)."""
    copies = PARAM_COPIES if net.stack == 1 else STACK_PARAM_COPIES
    per_example, eval_units = _units(net)
    activations = net.batch_size * per_example + _mask_elements(net)
    eval_rows = min(EVAL_CHUNK, net.val_rows)
    data_rows = net.train_rows + min(net.train_rows, net.val_rows)
    shared = eval_rows * eval_units + data_rows * net.input_dim
    return Footprint(
        depth=net.depth,
        width=net.width,
        batch_size=net.batch_size,
        input_dim=net.input_dim,
        classes=net.classes,
        stack=net.stack,
        parameter_bytes=int(BYTES_PER_FLOAT * copies * parameters(net)),
        activation_bytes=int(BYTES_PER_FLOAT * activations),
        shared_bytes=int(BYTES_PER_FLOAT * shared) + ALLOWANCE_BYTES,
        worker_bytes=int(BYTES_PER_FLOAT * WORKER_PARAM_COPIES * net.stack * parameters(net)),
        family=net.family,
    )


def _largest(dim: Dim) -> int:
    return int(max(dim.values()))


def _value_count(dim: Dim) -> float:
    if dim.kind == "fixed":
        return 1.0
    if dim.kind == "choice":
        return float(len(dim.choices or ()))
    return float((dim.high - dim.low) // (dim.step or 1) + 1)  # type: ignore[operator]


def _stack(spec: StudySpec, variant: str) -> int:
    """Trials a worker may train at once: a full CPU stack when few stacks can form. Stacks pad
    every layer to their widest trial (models.batched), so widths never split them: only depth
    and batch size do, and each member is sized as the widest network."""
    if not dropout_variant(variant).stackable:
        return 1
    if not model_family(getattr(spec.model, "family", "mlp")).stackable:
        return 1  # a family other than the MLP trains one trial at a time
    architectures = _value_count(spec.model.depth) * _value_count(spec.training.batch_size)
    if 2 * architectures > STACK_TRIALS:
        return 1
    return min(STACK_TRIALS, spec.search.n_trials)


def masked_linears(placements: list[str], depth: int) -> tuple[int, ...]:
    """The Linears DropConnect masks under any of `placements` (models.mlp.dropconnect_rates)."""
    parts = {part for placement in placements for part in placement.split("+")}
    layers: set[int] = set()
    if "input" in parts:
        layers.add(0)
    if "pre_activation" in parts:
        layers.update(range(depth))
    if "hidden" in parts:
        layers.update(range(1, depth + 1))
    if "last_hidden" in parts:
        layers.add(depth)
    return tuple(sorted(layers))


def _conv_fields(spec: StudySpec, family: str) -> dict[str, Any]:
    """A conv family's part of `Network`: its family, example shape, fc units and kernel (the
    largest each may take); nothing for the MLP."""
    if family == "mlp":
        return {}
    out: dict[str, Any] = {"family": family}
    out["example_shape"] = EXAMPLE_SHAPES.get(spec.dataset.name, ())
    if family == "cnn":
        for name in ("fc", "kernel"):
            value = spec.model.field(name)
            out[name] = _largest(value) if isinstance(value, Dim) else int(value)
    return out


def footprint(spec: StudySpec, input_dim: int | None = None, classes: int = 10) -> Footprint:
    """The memory the spec's largest network needs to train (`input_dim`: the data's, if known),
    for the variant of the spec that needs the most."""
    shape = BUILTIN_SHAPES.get(spec.dataset.name)
    features, classes, train_rows, val_rows = shape or (input_dim or 0, classes, 0, EVAL_CHUNK)
    if spec.dataset.train_subset is not None and train_rows:
        train_rows = min(train_rows, spec.dataset.train_subset)
    depth = _largest(spec.model.depth)
    family = getattr(spec.model, "family", "mlp")
    conv = _conv_fields(spec, family)
    nets = [
        Network(
            depth=depth,
            width=_largest(spec.model.width),
            batch_size=_largest(spec.training.batch_size),
            variant=variant,
            input_dim=features,
            classes=classes,
            train_rows=train_rows,
            val_rows=val_rows,
            multisample_k=_largest(spec.dropout.multisample_k),
            masked_linears=(
                masked_linears(spec.dropout.placements, depth)
                if dropout_variant(variant).acts_on == "weights"
                else ()
            ),
            stack=_stack(spec, variant),
            **conv,
        )
        for variant in spec.dropout.variants
    ]
    return max((network_footprint(n) for n in nets), key=lambda f: f.total_bytes)


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def over_limit_message(fp: Footprint, limit: int, setting: str) -> str | None:
    """One readable line when `fp` needs more than `limit` bytes (naming `setting`), else None."""
    if fp.total_bytes <= limit:
        return None
    at_once = f", {fp.stack} trials at once" if fp.stack > 1 else ""
    return (
        f"the largest network this spec allows ({fp.network}, "
        f"batch {fp.batch_size}{at_once}) needs about {_size(fp.total_bytes)} to train, over this "
        f"server's limit of {_size(limit)} ({setting}); write a smaller model.width or "
        f"model.depth (or training.batch_size), or raise {setting} on the server"
    )
