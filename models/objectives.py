"""Training objectives of the R-Dropout and Multi-Sample dropout variants."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def symmetric_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """½·(KL(P_a‖P_b) + KL(P_b‖P_a)) of the softmax distributions, summed over classes and
    averaged over the batch.

    The seed sums over the batch (`reduction='sum'`); the batch mean keeps α's meaning
    independent of the batch size, which a study may search over too.
    """
    log_a = F.log_softmax(logits_a, dim=-1)
    log_b = F.log_softmax(logits_b, dim=-1)
    kl_ab = (log_a.exp() * (log_a - log_b)).sum(-1)
    kl_ba = (log_b.exp() * (log_b - log_a)).sum(-1)
    return 0.5 * (kl_ab + kl_ba).mean()


def rdrop_loss(logits_a: Tensor, logits_b: Tensor, targets: Tensor, alpha: float) -> Tensor:
    """R-Dropout with α on the paper's scale: ½·[CE(a, y) + CE(b, y) + α·symKL(a, b)].

    Liang et al. (2021), eq. 3: L = L_NLL + α·L_KL with L_NLL = CE₁ + CE₂ and
    L_KL = ½·(KL(P₁‖P₂) + KL(P₂‖P₁)) (`symmetric_kl`). The whole loss is halved so its
    cross-entropy part has one pass's scale, as every other variant's (learning rates stay
    comparable); the KL's weight relative to the cross-entropy is the paper's α, so a value
    copied from the paper regularises as strongly. The seed's λ (a batch-summed KL added to the
    averaged CE) is α = 2·B·λ for batch size B: its λ = 0.5 at B = 64 is α = 64.
    """
    ce = 0.5 * (F.cross_entropy(logits_a, targets) + F.cross_entropy(logits_b, targets))
    return ce + 0.5 * alpha * symmetric_kl(logits_a, logits_b)


def multisample_loss(logits: Tensor | Sequence[Tensor], targets: Tensor) -> Tensor:
    """Multi-Sample dropout: (1/K)·Σ_k CE(logits_k, y) over K masks through a shared head.

    `logits` is a (K, B, C) tensor or a sequence of K (B, C) tensors.
    """
    stacked = logits if isinstance(logits, Tensor) else torch.stack(list(logits))
    k, batch, classes = stacked.shape
    # One cross-entropy over K·B rows is the mean of the K per-mask means (each has B rows).
    return F.cross_entropy(stacked.reshape(k * batch, classes), targets.repeat(k))
