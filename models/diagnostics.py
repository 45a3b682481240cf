"""What dropout is for, measured on a split: calibration, MC-dropout, train/eval mismatch, cost.

All functions are pure torch and return plain floats. Conventions:
- ECE: equal-width confidence bins (lo, hi] over [0, 1], confidence = max softmax probability;
  ECE = Σ_b |B_b|/n · |acc(B_b) − conf(B_b)| (Guo et al. 2017), 15 bins unless stated.
- NLL: mean −log p(y|x) in nats.
- MC dropout: only the stochastic layers are put in train mode (everything else stays in eval, so
  e.g. normalisation statistics never move); the prediction is the mean softmax of T passes.
- Train/eval discrepancy: the mean over examples and over the T train-mode passes of the
  symmetric KL ½[KL(p_train‖p_eval) + KL(p_eval‖p_train)] (R-Dropout's quantity, in nats) and
  of the total variation ½ Σ_c |p_train − p_eval| (in [0, 1]).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.dropout import (
    DropConnectLinear,
    NoiseLayer,
    StandoutInput,
    StandoutLinear,
)
from models.mlp import DropoutMLP
from models.sites import FamilyNet

ECE_BINS = 15
# Rows of stacked MC-dropout passes per forward group (passes × validation rows).
MC_STACK_ROWS = 65536
# Every module whose forward draws noise in train mode (torch's own dropouts included).
STOCHASTIC_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.dropout._DropoutNd,
    NoiseLayer,  # every registry noise function's layer (standard, vanilla, multisample, …)
    DropConnectLinear,
    StandoutLinear,
    StandoutInput,
)


def expected_calibration_error(probs: Tensor, targets: Tensor, n_bins: int = ECE_BINS) -> float:
    """ECE over `n_bins` equal-width confidence bins (lo, hi]; `probs` is (n, classes)."""
    probs = probs.detach().double()
    conf, pred = probs.max(dim=1)
    correct = pred.eq(targets.to(pred.device)).double()
    inner_edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=conf.device)
    bins = torch.bucketize(conf, inner_edges[1:-1], right=False)
    # Σ_b |Σ_{i∈b}(correct_i − conf_i)| / n  ==  Σ_b |B_b|/n · |acc_b − conf_b|
    per_bin = torch.zeros(n_bins, dtype=torch.float64, device=conf.device)
    per_bin.index_add_(0, bins, correct - conf)
    return float(per_bin.abs().sum() / len(conf))


def negative_log_likelihood(logits: Tensor, targets: Tensor) -> float:
    """Mean cross-entropy −log softmax(logits)[y] in nats."""
    return float(F.cross_entropy(logits.detach().double(), targets.to(logits.device)))


def accuracy(probs: Tensor, targets: Tensor) -> float:
    return float(probs.argmax(dim=1).eq(targets.to(probs.device)).double().mean())


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every module's own training flag restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


@contextmanager
def dropout_sampling(model: nn.Module) -> Iterator[int]:
    """Eval mode except the stochastic layers, which sample masks; yields how many there are.

    The modules' own training flags are restored on exit.
    """
    with _eval_mode(model):
        stochastic = [m for m in model.modules() if isinstance(m, STOCHASTIC_MODULES)]
        for m in stochastic:
            m.train()
        yield len(stochastic)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _logits(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    with torch.inference_mode():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def inference_ms_per_1k(
    model: nn.Module, x: Tensor, *, warmup: int = 2, repeats: int = 5, batch_size: int = 4096
) -> float:
    """Eval-mode forward time over `x` in ms per 1000 samples: median of `repeats` after warm-up."""
    x = x.to(_model_device(model))
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times = []
    with _eval_mode(model):
        for _ in range(warmup):
            _logits(model, x, batch_size)
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            _logits(model, x, batch_size)
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3 * 1000.0 / len(x)


def _mc_logits(model: nn.Module, x: Tensor, passes: int, batch_size: int) -> Iterator[Tensor]:
    """Logits of `passes` stochastic passes over `x`, as [g, n, classes] groups of passes.

    A `DropoutMLP` or `FamilyNet` (bare or inside a `DropoutClassifier`) draws g masks in one
    call: the layers before its first stochastic one run once, the rest on the batch repeated g
    times (a `FamilyNet` gives DropConnect a call per mask itself). Any other
    network gets `x` repeated g times, unless it has DropConnect, whose weight mask is drawn once
    per call and would tie stacked passes together: that one runs pass by pass.
    """
    net = getattr(model, "net", model)
    sampler = net if isinstance(net, DropoutMLP | FamilyNet) else None
    per_call = 1
    if sampler is not None or not any(isinstance(m, DropConnectLinear) for m in model.modules()):
        per_call = max(1, min(passes, MC_STACK_ROWS // max(len(x), 1)))
    done = 0
    with torch.inference_mode():
        while done < passes:
            g = min(per_call, passes - done)
            if sampler is not None:
                chunks = [
                    sampler(x[i : i + batch_size], samples=g) for i in range(0, len(x), batch_size)
                ]
                yield torch.cat([c.view(g, -1, c.shape[-1]) for c in chunks], dim=1)
            else:
                stacked = _logits(
                    model, x.repeat(g, *[1] * (x.dim() - 1)) if g > 1 else x, batch_size
                )
                yield stacked.view(g, len(x), -1)
            done += g


def regularisation_diagnostics(
    model: nn.Module,
    x_val: Tensor,
    y_val: Tensor,
    *,
    mc_passes: int = 20,
    seed: int = 0,
    n_bins: int = ECE_BINS,
    batch_size: int = 4096,
    timing_repeats: int = 5,
) -> dict[str, float | int]:
    """Calibration, MC-dropout, train/eval discrepancy and inference cost on one split.

    Keys: eval_acc, val_nll, val_ece (eval mode); mc_acc, mc_nll, mc_ece (mean softmax of
    `mc_passes` passes with dropout sampling; equal to the eval numbers when the network has
    no stochastic layer); train_eval_sym_kl, train_eval_tv (see the module docstring);
    ms_per_1k; and the settings ece_bins, mc_passes, stochastic_layers, n.
    The dropout masks come from `seed`; the caller's RNG state is left as it was.
    """
    if mc_passes < 1:
        raise ValueError(f"mc_passes must be at least 1, got {mc_passes}")
    device = _model_device(model)
    x, y = x_val.to(device), y_val.to(device)
    with _eval_mode(model):
        eval_logits = _logits(model, x, batch_size).double()
    eval_logp = F.log_softmax(eval_logits, dim=1)
    eval_p = eval_logp.exp()

    log_p_target = []  # per pass: log p_t(y|x), for the NLL of the mean prediction
    sum_p = torch.zeros_like(eval_p)
    sym_kl = tv = 0.0
    cuda_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices), dropout_sampling(model) as n_stochastic:
        torch.manual_seed(seed)
        for logits in _mc_logits(model, x, mc_passes, batch_size):
            logp = F.log_softmax(logits.double(), dim=-1)  # [passes, n, classes]
            p = logp.exp()
            sum_p += p.sum(0)
            log_p_target.append(logp.gather(2, y.expand(len(p), -1)[..., None]).squeeze(2))
            sym_kl += float((0.5 * (p - eval_p) * (logp - eval_logp)).sum(-1).mean(1).sum())
            tv += float((0.5 * (p - eval_p).abs()).sum(-1).mean(1).sum())
    mc_p = sum_p / mc_passes
    # log mean_t p_t(y|x) computed in log space so a confident wrong pass cannot give log 0.
    mc_log_p = torch.logsumexp(torch.cat(log_p_target), dim=0) - math.log(mc_passes)

    return {
        "n": len(y),
        "ece_bins": n_bins,
        "eval_acc": accuracy(eval_p, y),
        "val_nll": negative_log_likelihood(eval_logits, y),
        "val_ece": expected_calibration_error(eval_p, y, n_bins),
        "mc_passes": mc_passes,
        "stochastic_layers": n_stochastic,
        "mc_acc": accuracy(mc_p, y),
        "mc_nll": float(-mc_log_p.mean()),
        "mc_ece": expected_calibration_error(mc_p, y, n_bins),
        "train_eval_sym_kl": max(sym_kl / mc_passes, 0.0),
        "train_eval_tv": tv / mc_passes,
        "ms_per_1k": inference_ms_per_1k(model, x, repeats=timing_repeats, batch_size=batch_size),
    }
