"""K, the trials a worker claims and trains together per slot (`--batch-trials`): the option, or
with `auto` what the device holds, cut to what padding and the search's start-up counts allow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from studyd.daemon.search import stack_count, startup_counts
from studyd.daemon.worker.state import ServedStudy
from studyd.spec import StudySpec

# `--batch-trials auto`: K on a CPU (K = 8 gave ≥ 2× the trials/hour of K = 1 on mnist1d with
# one thread, bench/throughput), and the most on a GPU, where free memory decides below that.
AUTO_CPU_TRIALS = 8
AUTO_MAX_TRIALS = 32
# A training step's fixed cost (Python, dispatch, optimizer) in per-example FLOPs of the
# network: a stack pays it once for K trials. Fitted on mnist1d (bench/throughput, 1 thread):
# K = 8 at 2 × 128 trained 1.6× the trials/hour of K = 1, (c + F) / (c / 8 + F) = 1.6 → c ≈ 17k;
# K = 8 padded, depth 1–3 and width 4–128 (log), 2.2× → c ≈ 36k. The larger: the padded case is
# the one this decides. A GPU's launch overhead is larger still, so this errs towards small K.
STEP_OVERHEAD = 36_000.0


def trials_per_slot(
    batch_trials: int | str,
    served: ServedStudy,
    device: str,
    finished: int = 0,
    in_flight: int = 0,
) -> int:
    """K: the option, or with `auto` what the device's free memory holds (at most 32) when
    the spec's trials would form stacks of two or more, cut to the K whose padding to the
    widest trial costs least per trial (`padded_trials`); 1 when they would mostly train alone (a
    searched depth, say), since claimed slots then wait in line instead of going to other
    workers. With `auto` a stack also ends where the search starts to use results (`ramped`;
    `in_flight`: the study's trials other workers are training)."""
    if batch_trials != "auto":
        return max(int(batch_trials), 1)
    shape = served.shape = served.shape or StudyShape.of(served)
    return ramped(_auto_trials(served.spec, shape, device), finished, shape.startups, in_flight)


@dataclass(frozen=True)
class StudyShape:
    """What `auto` reads of a study that does not change while it runs (kept per study)."""

    stacks: float  # `search.stack_count`
    startups: tuple[int, ...]  # `search.startup_counts`
    input_dim: int
    classes: int

    @classmethod
    def of(cls, served: ServedStudy) -> StudyShape:
        data, spec = served.data, served.spec
        return cls(stack_count(spec), startup_counts(spec), data.input_dim, data.num_classes)


def ramped(k: int, finished: int, startups: tuple[int, ...], in_flight: int = 0) -> int:
    """At most K, at most one more trial than the study has finished, and no more than the
    trials left before the next of its `startups` (`search.startup_counts`: 5 for the median
    pruner, 10 for TPE) once the `in_flight` trials of other workers are counted: alone, stacks
    of 1, 2, 2, 5, then K. Another worker's trials in flight were asked before the count too:
    without them, two workers each asking a stack of 5 at 5 finished asked 15 trials at random.

    A stack's trials are asked together and all finish at its end, and the pruner judges a trial
    only against finished ones: growing from one trial gives the study its first answer after a
    single trial's time. A stack that straddles a start-up count is asked as if the count had not
    been reached: its later trials are random draws for TPE (a ramp of 1, 2, 4, 8 drew 15 of 20
    at random where one at a time draws 10), or unpruned for the median pruner.
    """
    ahead = [count - finished - in_flight for count in startups if count > finished]
    return max(1, min([k, finished + 1, *ahead]))


def _auto_trials(spec: StudySpec, shape: StudyShape, device: str) -> int:
    """`auto`'s K for a study under way (before `ramped`)."""
    if 2 * shape.stacks > _auto_cap(device):
        return 1
    k = auto_batch_trials(
        device,
        shape.input_dim,
        _dim_max(spec.model.width),
        _dim_max(spec.model.depth),
        shape.classes,
        _dim_max(spec.training.batch_size),
    )
    return padded_trials(k, spec, shape.input_dim, shape.classes)


def padded_trials(k: int, spec: StudySpec, input_dim: int, classes: int) -> int:
    """The K ≤ k with the least expected cost per trial of a stack padded to its widest trial:
    STEP_OVERHEAD / K + E[flops(max of K widths)], flops(w) = in·w + (depth − 1)·w² + w·classes
    per example at the spec's middle depth, over its width distribution."""
    widths = _width_grid(spec)
    if len(set(widths)) == 1:
        return k
    depth = _dim_mean(spec.model.depth)
    flops = [input_dim * w + (depth - 1) * w * w + w * classes for w in widths]
    n = len(flops)

    def cost(size: int) -> float:
        # E[max of `size` draws] over the sorted grid: P(max is the j-th) = ((j+1)/n)^K − (j/n)^K.
        widest = sum(f * (((j + 1) / n) ** size - (j / n) ** size) for j, f in enumerate(flops))
        return STEP_OVERHEAD / size + widest

    return min(range(1, k + 1), key=cost)


def _dim_mean(dim: Any) -> float:
    """A `Dim`'s middle value: its value, the mean of its choices or of its range's ends."""
    if dim.value is not None:
        return float(dim.value)
    if dim.choices:
        return sum(dim.choices) / len(dim.choices)
    return (dim.low + dim.high) / 2


def _width_grid(spec: StudySpec, points: int = 64) -> list[float]:
    """Equally likely widths of the spec (quantiles of its range, or its choices), ascending."""
    dim = spec.model.width
    if dim.value is not None:
        return [dim.value]
    if dim.choices:
        return sorted(dim.choices)
    assert dim.low is not None and dim.high is not None
    qs = [(i + 0.5) / points for i in range(points)]
    if spec.model.log:
        return [dim.low * (dim.high / dim.low) ** q for q in qs]
    return [dim.low + (dim.high - dim.low) * q for q in qs]


def auto_batch_trials(
    device: str, input_dim: int, width: int, depth: int, classes: int, batch_size: int
) -> int:
    """K for `--batch-trials auto`: AUTO_CPU_TRIALS on a CPU; on a GPU as many trials as half its
    free memory holds, at most AUTO_MAX_TRIALS. Per trial (float32): weights, gradient and two
    Adam moments (4 × parameters) plus a batch's activations kept for backward (≈ 3 × B × width
    × depth)."""
    params = input_dim * width + (depth - 1) * width * width + width * classes
    per_trial = 4 * (4 * params + 3 * batch_size * width * depth)
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, min(_auto_cap(device), int(0.5 * free) // per_trial))


def _auto_cap(device: str) -> int:
    """The most trials `auto` stacks on `device`."""
    return AUTO_MAX_TRIALS if device.startswith("cuda") else AUTO_CPU_TRIALS


def _dim_max(dim: Any) -> int:
    """The largest value a spec `Dim` can take."""
    return int(max(x for x in (dim.value, dim.high, *(dim.choices or ())) if x is not None))
