"""DropConnect as Wan et al. (2013) define it, for one network and for a stack of K trials.

Training masks each weight per example: r_e = act((W ⊙ M_e)·x_e + b), M_e ~ Bernoulli(1−p)
(the paper's eq. 2 with one mask per example; 16 random bits per mask element, `keep_bits`).
Evaluation is the paper's inference (its Algorithm 2): each pre-activation is moment-matched
by a Gaussian, u ~ N(μ, σ²) with μ = (1−p)·Wx + b and σ² = p(1−p)·(W ⊙ W)(x ⊙ x), and the
activation is averaged over Z samples of it, r = (1/Z)·Σ_z act(u_z). Z = `dropconnect_samples`;
Z = 0 is the cheap mean rule r = act(W·(1−p)·x + b). The head (no activation) uses E[u] = μ
either way.

A per-example mask costs batch × in × out random draws and as many floats of masked weights
kept for the backward pass, per layer and step. `MASK_BUDGET` bounds that: a batch whose masks
would exceed it lets consecutive examples share a mask (`examples_per_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from models.variants import Rate

# Mask elements one layer may hold per trial and step: 2²⁴ floats are 64 MiB of mask and as much
# again of masked weights (kept for backward); a 784-input, 1024-wide layer passes it above
# batch 20.
MASK_BUDGET = 1 << 24
# The inference's samples come from their own fixed stream: evaluation is deterministic and
# draws nothing from a trial's training stream.
INFERENCE_SEED = 0

Activation = Callable[[Tensor], Tensor]


def examples_per_mask(batch: int, n_in: int, n_out: int) -> int:
    """Consecutive examples sharing one mask: 1 (the paper's) while batch·in·out ≤ MASK_BUDGET."""
    groups = max(1, min(batch, MASK_BUDGET // (n_in * n_out)))
    return -(-batch // groups)


def dropconnect_linear(
    x: Tensor,
    w: Tensor,
    b: Tensor,
    p: Rate,
    *,
    training: bool,
    samples: int,
    act: Activation | None,
    generator: torch.Generator | None = None,
    streams: Sequence[torch.Generator | None] | None = None,
    own: Sequence[tuple[int, int]] | None = None,
    rates: Sequence[float] | None = None,
) -> Tensor:
    """DropConnect of x through w (in × out) and b, then `act` (None: the head).

    One network: x [B, in], w [in, out], b [out], p a float, masks from `generator` (None: torch's
    global stream). A stack: x [K, B, in], w [K, in, out], b [K, 1, out], p [K, 1, 1]; trial k
    draws from `streams[k]` (None: rate 0, no draw) over its own (in, out) block `own[k]` of the
    padded weights at its config's rate `rates[k]` (a Python float, as its own network's), so its
    masks are those of its own network.
    """
    if training:
        if streams is None:
            return _masked(x, w, b, p, generator, act)
        assert own is not None and rates is not None
        return _masked_stack(x, w, b, rates, streams, own, act)
    mean = x.matmul(w * (1.0 - p)) + b
    if act is None:
        return mean
    if samples == 0:
        return act(mean)
    std = ((x * x).matmul(w * w) * (p * (1.0 - p))).sqrt()
    return gaussian_average(mean, std, samples, act)


def _masked(
    x: Tensor, w: Tensor, b: Tensor, p: float, generator: torch.Generator | None, act: Any
) -> Tensor:
    """One network (or one trial of a stack): a mask per example, up to the budget."""
    batch, n_in = x.shape
    n_out = w.shape[-1]
    size = examples_per_mask(batch, n_in, n_out)
    groups = -(-batch // size)
    mask = keep_bits((groups, n_in, n_out), p, generator, w.device).to(w.dtype)
    out = _grouped_matmul(x, w.unsqueeze(0) * mask, size)
    out = out + b
    return out if act is None else act(out)


def _masked_stack(
    x: Tensor,
    w: Tensor,
    b: Tensor,
    rates: Sequence[float],
    streams: Sequence[torch.Generator | None],
    own: Sequence[tuple[int, int]],
    act: Any,
) -> Tensor:
    k, batch, n_in = x.shape
    n_out = w.shape[-1]
    sizes = {examples_per_mask(batch, i, o) for i, o in own}
    size = next(iter(sizes))
    groups = -(-batch // size)
    if len(sizes) == 1 and groups * n_in * n_out <= MASK_BUDGET:
        # Every trial groups its examples alike and the padded masks fit: one op for the stack.
        blocks = []
        for gen, (i, o), p in zip(streams, own, rates, strict=True):
            if gen is None:  # rate 0: no draw, every weight kept (padding is zero anyway)
                blocks.append(torch.ones((groups, n_in, n_out), dtype=torch.bool, device=w.device))
            else:
                bits = keep_bits((groups, i, o), p, gen, w.device)
                blocks.append(F.pad(bits, (0, n_out - o, 0, n_in - i)))
        out = _grouped_matmul(x, w.unsqueeze(1) * torch.stack(blocks).to(w.dtype), size) + b
        return out if act is None else act(out)
    # Otherwise each trial on its own block, within the budget as in its own network.
    rows = []
    for t, (gen, (i, o), p) in enumerate(zip(streams, own, rates, strict=True)):
        xt, wt, bt = x[t, :, :i], w[t, :i, :o], b[t, 0, :o]
        if gen is None:
            out = xt @ wt + bt
            rows.append(F.pad(out if act is None else act(out), (0, n_out - o)))
        else:
            rows.append(F.pad(_masked(xt, wt, bt, p, gen, act), (0, n_out - o)))
    return torch.stack(rows)


def keep_bits(
    shape: tuple[int, ...], p: float, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """M ~ Bernoulli(1−p) of `shape` (bool) from 16 random bits each: keep when u ≥ round(p·2¹⁶).

    Four masks per 64-bit draw, filled in order: 5.8× cheaper on a CPU than a float uniform each
    (2 M elements: 1.8 vs 10.3 ms, one thread; the draw was half of a DropConnect step). The keep
    probability is 1 − round(p·2¹⁶)/2¹⁶, within 2⁻¹⁷ of 1 − p.
    """
    n = math.prod(shape)
    raw = torch.empty(-(-n // 4), dtype=torch.int64, device=device)
    raw.random_(-(2**63), None, generator=generator)  # the full 64-bit range
    bits = raw.view(torch.int16)[:n].view(shape)  # u − 2¹⁵: uniform on [−2¹⁵, 2¹⁵)
    return bits >= round(p * 65536) - 32768


def _grouped_matmul(x: Tensor, masked: Tensor, size: int) -> Tensor:
    """x [*, B, in] through masked weights [*, G, in, out], `size` consecutive rows per group."""
    *lead, batch, n_in = x.shape
    groups = masked.shape[-3]
    if groups * size != batch:
        x = F.pad(x, (0, 0, 0, groups * size - batch))
    out = x.reshape(*lead, groups, size, n_in).matmul(masked)
    return out.reshape(*lead, groups * size, -1)[..., :batch, :]


def gaussian_average(mean: Tensor, std: Tensor, samples: int, act: Activation) -> Tensor:
    """(1/Z)·Σ_z act(μ + σ·ε_z), ε_z ~ N(0, 1): Algorithm 2's average over Z samples of u.

    Unit j's Z draws are the same for every row, trial and layer width (drawn unit by unit from
    `INFERENCE_SEED`'s stream): a row's output depends on that row alone, not on the batch, chunk
    or (padded) stack it is evaluated in.
    """
    eps = unit_samples(mean.shape[-1], samples).to(mean.device, mean.dtype)  # [Z, out]
    # One sample at a time over the whole [*, rows, units] block, fused μ + σ·ε: the block stays
    # in cache. 15× faster than broadcasting chunks of samples (4 trials × 359 rows × 128 units,
    # Z = 100: 20 vs 300 ms, one thread).
    total = torch.zeros_like(mean)
    for z in range(samples):
        total += act(torch.addcmul(mean, eps[z], std))
    return total / samples


def unit_samples(units: int, samples: int) -> Tensor:
    """[Z, units] N(0, 1) draws; unit j's column is the same for any `units` > j.

    Box–Muller over CPU uniforms laid out unit-major: torch's CPU `uniform_` fills in order, so
    a wider layer's first columns repeat a narrower one's (its `normal_` does not: it pairs draws
    in blocks that move with the size).
    """
    generator = torch.Generator().manual_seed(INFERENCE_SEED)
    u = torch.empty(units, samples, 2).uniform_(generator=generator)
    radius = (-2.0 * torch.log1p(-u[..., 0])).sqrt()  # 1 − u ∈ (0, 1]: log is finite
    return (radius * torch.cos(2.0 * math.pi * u[..., 1])).T
