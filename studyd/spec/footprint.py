"""What the largest network a spec allows costs to train: memory, checked at submit.

One request for `model: {width: 8192, depth: 8}` took a worker to 8.6 GB. The estimate (float32):
a trial holds weights, gradients and two Adam moments (4 × parameters) and one batch's activations
kept for backward (≈ 3 × batch × width × depth), the same formula the worker sizes its stacks
with; a worker may train a stack of trials at once when they share an architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.families import model_family
from studyd.spec.dims import Dim
from studyd.spec.study import StudySpec

BYTES_PER_FLOAT = 4
# `studyd worker --batch-trials auto` stacks up to this many trials on a CPU when two stacks'
# worth share an architecture (studyd.daemon.worker.AUTO_CPU_TRIALS); on a GPU it sizes the
# stack by free memory instead.
STACK_TRIALS = 8
# Features and classes of the bundled datasets (user files: read from the file at submit).
BUILTIN_SHAPES: dict[str, tuple[int, int]] = {
    "digits": (64, 10),
    "mnist1d": (40, 10),
    "fashion-mnist": (784, 10),
}


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

    @property
    def total_bytes(self) -> int:
        return self.stack * (self.parameter_bytes + self.activation_bytes)

    @property
    def field(self) -> str:
        """The spec field to shrink first: the larger of the two terms."""
        return (
            "model.width"
            if self.parameter_bytes >= self.activation_bytes
            else "training.batch_size"
        )


def _largest(dim: Dim) -> int:
    return int(max(dim.values()))


def _value_count(dim: Dim) -> float:
    if dim.kind == "fixed":
        return 1.0
    if dim.kind == "choice":
        return float(len(dim.choices or ()))
    return float((dim.high - dim.low) // (dim.step or 1) + 1)  # type: ignore[operator]


def _stack(spec: StudySpec) -> int:
    """Trials a worker may train at once: a full CPU stack when few stacks can form. Stacks pad
    every layer to their widest trial (models.batched), so widths never split them: only depth
    and batch size do, and each member is sized as the widest network."""
    model = spec.model
    if not model_family(getattr(model, "family", "mlp")).stackable:
        return 1  # a family other than the MLP trains one trial at a time
    architectures = _value_count(model.depth) * _value_count(spec.training.batch_size)
    if 2 * architectures > STACK_TRIALS:
        return 1
    return min(STACK_TRIALS, spec.search.n_trials)


def footprint(spec: StudySpec, input_dim: int | None = None, classes: int = 10) -> Footprint:
    """The memory the spec's largest network needs to train (`input_dim`: the data's, if known)."""
    shape = BUILTIN_SHAPES.get(spec.dataset.name)
    features = shape[0] if shape else (input_dim or 0)
    classes = shape[1] if shape else classes
    depth, width = _largest(spec.model.depth), _largest(spec.model.width)
    batch = _largest(spec.training.batch_size)
    params = features * width + (depth - 1) * width * width + width * classes
    return Footprint(
        depth=depth,
        width=width,
        batch_size=batch,
        input_dim=features,
        classes=classes,
        stack=_stack(spec),
        parameter_bytes=BYTES_PER_FLOAT * 4 * params,
        activation_bytes=BYTES_PER_FLOAT * 3 * batch * width * depth,
    )


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
        f"the largest network this spec allows ({fp.depth} hidden layers of {fp.width} units, "
        f"batch {fp.batch_size}{at_once}) needs about {_size(fp.total_bytes)} to train, over this "
        f"server's limit of {_size(limit)} ({setting}); write a smaller model.width or "
        f"model.depth (or training.batch_size), or raise {setting} on the server"
    )
