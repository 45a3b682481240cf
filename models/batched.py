"""Batched trials: K trials that share an architecture trained at once as one stacked MLP.

Weights are stacked as [K, in, out] and each layer is one `torch.baddbmm`, so K small MLPs cost
about one Python step instead of K (small MLPs are overhead-bound on CPU and leave a GPU idle).
Each trial keeps its own initialisation seed, data order, dropout rate and masks, learning rate,
weight decay and stop decision; a stopped trial is dropped from the stack and costs nothing more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from models.config import ModelConfig, TrainConfig
from models.mlp import DropoutMLP, _dropconnect_rates, _sites, build_mlp

# Variants whose noise is elementwise on activations (or on weights, once per batch), so one
# stacked tensor op per site serves every trial. The others fall back to unbatched training.
BATCHABLE_VARIANTS: tuple[str, ...] = ("none", "standard", "vanilla", "gaussian", "dropconnect")
_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
}
_EVAL_CHUNK = 4096


class BatchingError(ValueError):
    """The given trials cannot be trained together in one stack."""


@dataclass(frozen=True)
class BatchedEpochMetrics:
    """One trial's epoch, with the fields of `models.training.EpochMetrics`.

    `seconds` is the stack's wall time for the epoch divided by the trials it trained, the
    amortised cost of this trial's epoch.
    """

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float


@dataclass
class BatchedTrialResult:
    """One trial's outcome, shaped like `models.training.TrainResult`."""

    model: torch.nn.Module
    history: list[BatchedEpochMetrics] = field(default_factory=list)
    stopped_early: bool = False
    param_count: int = 0
    device: str = "cpu"


def batch_key(model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[Any, ...] | None:
    """What trials must share to train in one stack; None when the variant is not batchable.

    Rates, learning rate, weight decay, momentum, epochs and seed may differ between trials.
    """
    if model_cfg.variant not in BATCHABLE_VARIANTS:
        return None
    use_input, pre, post = _sites(model_cfg)
    sites = () if model_cfg.variant == "none" else (use_input, tuple(pre), tuple(post))
    return (
        model_cfg.input_dim,
        model_cfg.num_classes,
        tuple(model_cfg.hidden),
        model_cfg.activation,
        model_cfg.variant,
        sites,
        train_cfg.batch_size,
        train_cfg.optimizer,
        getattr(train_cfg, "train_metrics", "eval"),
    )


class StackedMLP(torch.nn.Module):
    """K MLPs of one architecture; `forward(x)` maps [K, B, in] (or shared [B, in]) to [K, B, C].

    Sites and rates follow `models.mlp.build_mlp`: `input` (rate `input_rate`), `pre_activation`
    and `hidden` (rate `rates[i]` of hidden layer i), `last_hidden` (the post site of the last
    layer). `dropconnect` instead masks the weights of the Linear each site feeds, one mask per
    trial per batch, with `build_mlp`'s combined per-Linear rates.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        weights: Sequence[Tensor],
        biases: Sequence[Tensor],
        rates: Tensor,
        input_rate: Tensor,
        weight_rates: Tensor,
    ) -> None:
        super().__init__()
        self.variant = cfg.variant
        self.act = _ACTIVATIONS[cfg.activation]
        use_input, pre, post = _sites(cfg)
        noisy = cfg.variant not in ("none", "dropconnect")
        self.input_site = noisy and use_input
        self.pre_sites = [noisy and on for on in pre]
        self.post_sites = [noisy and on for on in post]
        self.weights = torch.nn.ParameterList(torch.nn.Parameter(w) for w in weights)
        self.biases = torch.nn.ParameterList(torch.nn.Parameter(b) for b in biases)
        # Per-trial rates shaped [layers, K, 1, 1] / [K, 1, 1]: they broadcast over [K, B, width].
        self.register_buffer("rates", rates)
        self.register_buffer("input_rate", input_rate)
        self.register_buffer("weight_rates", weight_rates)
        self.generator: torch.Generator | None = None

    @classmethod
    def from_configs(cls, cfgs: Sequence[ModelConfig], seeds: Sequence[int]) -> StackedMLP:
        """Stack of freshly initialised trials, trial k from `seeds[k]`."""
        first = cfgs[0]
        dims = [first.input_dim, *first.hidden, first.num_classes]
        weights, biases = [], []
        for layer, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            pairs = [_linear_init(fan_in, fan_out, s, layer) for s in seeds]
            weights.append(torch.stack([w for w, _ in pairs]))
            biases.append(torch.stack([b for _, b in pairs]))
        rates = [c.layer_rates() for c in cfgs]
        weight_rates = [
            _dropconnect_rates(c, r) if c.variant == "dropconnect" else [0.0] * len(dims[1:])
            for c, r in zip(cfgs, rates, strict=True)
        ]
        return cls(
            first,
            weights,
            biases,
            _per_layer(rates),
            torch.tensor([c.input_rate for c in cfgs], dtype=torch.float32).view(-1, 1, 1),
            _per_layer(weight_rates),
        )

    @property
    def num_trials(self) -> int:
        return self.weights[0].shape[0]

    def keep_trials(self, keep: Tensor) -> None:
        """Drop every trial not in `keep` (indices into the current stack)."""
        for plist in (self.weights, self.biases):
            for i, p in enumerate(plist):
                plist[i] = torch.nn.Parameter(p.detach()[keep])
        self.rates = self.rates[:, keep]
        self.weight_rates = self.weight_rates[:, keep]
        self.input_rate = self.input_rate[keep]

    def export_trial(self, cfg: ModelConfig, k: int) -> DropoutMLP:
        """Trial k as the `build_mlp(cfg)` network, weights copied (eval mode)."""
        net = build_mlp(cfg).to(self.weights[0].device)
        linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, self.weights, self.biases, strict=True):
                lin.weight.copy_(w[k].T)
                lin.bias.copy_(b[k, 0])
        return net.eval()

    def forward(self, x: Tensor) -> Tensor:
        dropconnect = self.variant == "dropconnect"
        h = x
        if self.input_site:
            h = self._noise(h.expand(self.num_trials, *h.shape[-2:]), self.input_rate)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if dropconnect:
                w = self._noise(w, self.weight_rates[i])
            h = torch.baddbmm(b, h, w) if h.dim() == 3 else h @ w + b
            if i == len(self.pre_sites):
                return h
            if self.pre_sites[i]:
                h = self._noise(h, self.rates[i])
            h = self.act(h)
            if self.post_sites[i]:
                h = self._noise(h, self.rates[i])
        raise AssertionError("unreachable: the head returns")

    def _noise(self, h: Tensor, p: Tensor) -> Tensor:
        """Dropout noise with per-trial rate p ([K, 1, 1]), by DESIGN's variant table."""
        v = self.variant
        if not self.training:
            return h * (1.0 - p) if v in ("vanilla", "dropconnect") else h
        if v == "gaussian":
            eps = torch.randn(h.shape, generator=self.generator, device=h.device, dtype=h.dtype)
            return h * eps.mul_(torch.sqrt(p / (1.0 - p))).add_(1.0)
        keep = torch.rand(h.shape, generator=self.generator, device=h.device, dtype=h.dtype) >= p
        return h * keep / (1.0 - p) if v == "standard" else h * keep


def _per_layer(rates: Sequence[Sequence[float]]) -> Tensor:
    """[K][layers] rates as a [layers, K, 1, 1] tensor."""
    t = torch.tensor(rates, dtype=torch.float32)
    return t.T.reshape(t.shape[1], t.shape[0], 1, 1).contiguous()


def _linear_init(fan_in: int, fan_out: int, seed: int, layer: int) -> tuple[Tensor, Tensor]:
    """nn.Linear's default init, U(±1/√fan_in) for weight and bias, from the trial's own seed."""
    g = torch.Generator().manual_seed(seed * 1009 + layer)
    bound = 1.0 / math.sqrt(fan_in)
    w = torch.empty(fan_in, fan_out).uniform_(-bound, bound, generator=g)
    b = torch.empty(1, fan_out).uniform_(-bound, bound, generator=g)
    return w, b


class StackedOptimizer:
    """SGD (momentum), Adam or AdamW over stacked [K, ...] parameters with per-trial lr and wd.

    Same update rules as torch.optim's defaults: Adam's weight decay is L2 added to the gradient;
    AdamW's is decoupled, p ← p·(1 − lr·wd); SGD's momentum buffer is b ← μ·b + g.
    """

    def __init__(self, kind: str, params: list[Tensor], cfgs: Sequence[TrainConfig]) -> None:
        self.kind = kind
        self.lr = _per_trial([c.lr for c in cfgs], params[0].device)
        self.wd = _per_trial([c.weight_decay for c in cfgs], params[0].device)
        self.momentum = _per_trial([c.momentum for c in cfgs], params[0].device)
        self.steps = 0
        self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        self.betas, self.eps = (0.9, 0.999), 1e-8

    def keep_trials(self, keep: Tensor) -> None:
        self.lr, self.wd, self.momentum = self.lr[keep], self.wd[keep], self.momentum[keep]
        self.state = [(m[keep], v[keep]) for m, v in self.state]

    @torch.no_grad()
    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        self.steps += 1
        b1, b2 = self.betas
        bc1, bc2 = 1.0 - b1**self.steps, 1.0 - b2**self.steps
        for p, g, (m, v) in zip(params, grads, self.state, strict=True):
            if self.kind == "adamw":
                p.mul_(1.0 - self.lr * self.wd)
            else:
                g = g.add(p * self.wd)
            if self.kind == "sgd":
                m.mul_(self.momentum).add_(g)
                p.sub_(self.lr * m)
                continue
            m.lerp_(g, 1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(self.eps)
            p.sub_((self.lr / bc1) * m / denom)


def _per_trial(values: Sequence[float], device: torch.device) -> Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


OnBatchedEpoch = Callable[[int, list[BatchedEpochMetrics | None]], Sequence[bool]]


def train_batched(
    model_cfgs: Sequence[ModelConfig],
    train_cfgs: Sequence[TrainConfig],
    data: Any,
    *,
    device: str | torch.device = "auto",
    on_epoch: OnBatchedEpoch | None = None,
) -> list[BatchedTrialResult]:
    """Train K trials of one architecture at once; result k belongs to `model_cfgs[k]`.

    `data` has the tensors of `models.data.DatasetSplits`. `on_epoch(epoch, metrics)` gets one
    entry per trial (None for trials already finished) and returns one stop flag per trial.
    """
    keys = {batch_key(m, t) for m, t in zip(model_cfgs, train_cfgs, strict=True)}
    if None in keys or len(keys) != 1:
        raise BatchingError(f"trials need one batchable architecture to share a stack: {keys}")
    dev = _resolve_device(device)
    k_total = len(model_cfgs)
    seeds = [t.seed for t in train_cfgs]
    model = StackedMLP.from_configs(model_cfgs, seeds).to(dev)
    model.generator = torch.Generator(device=dev).manual_seed(_mix_seeds(seeds))
    optimizer = StackedOptimizer(train_cfgs[0].optimizer, list(model.parameters()), train_cfgs)
    orders = [torch.Generator().manual_seed(s) for s in seeds]
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
    x_val, y_val = data.x_val.to(dev), data.y_val.to(dev)
    active = list(range(k_total))  # original index of each stack row
    results: list[BatchedTrialResult | None] = [None] * k_total
    param_count = sum(p[0].numel() for p in model.parameters())
    max_epochs = max(t.epochs for t in train_cfgs)
    for epoch in range(max_epochs):
        start = time.perf_counter()
        model.train()
        loss_sum, correct = _train_epoch(
            model, optimizer, x_train, y_train, [orders[k] for k in active], train_cfgs[0]
        )
        if getattr(train_cfgs[0], "train_metrics", "eval") == "eval":
            train_loss, train_acc = evaluate_stack(model, x_train, y_train)
        else:
            train_loss, train_acc = loss_sum / x_train.shape[0], correct / x_train.shape[0]
        val_loss, val_acc = evaluate_stack(model, x_val, y_val)
        stats = torch.stack([train_loss, train_acc, val_loss, val_acc]).tolist()
        seconds = (time.perf_counter() - start) / len(active)
        per_trial: list[BatchedEpochMetrics | None] = [None] * k_total
        for row, k in enumerate(active):
            per_trial[k] = BatchedEpochMetrics(epoch, *(s[row] for s in stats), seconds)
            if results[k] is None:
                results[k] = BatchedTrialResult(model, param_count=param_count, device=str(dev))
            results[k].history.append(per_trial[k])
        flags = list(on_epoch(epoch, per_trial)) if on_epoch else [False] * k_total
        keep = []
        for row, k in enumerate(active):
            done = epoch + 1 >= train_cfgs[k].epochs
            if flags[k] or done:
                results[k].stopped_early = bool(flags[k]) and not done
                results[k].model = model.export_trial(model_cfgs[k], row)
            else:
                keep.append(row)
        if len(keep) < len(active):
            if not keep:
                break
            idx = torch.tensor(keep, device=dev)
            model.keep_trials(idx)
            optimizer.keep_trials(idx)
            active = [active[row] for row in keep]
    return [r for r in results if r is not None]


def _train_epoch(
    model: StackedMLP,
    optimizer: StackedOptimizer,
    x: Tensor,
    y: Tensor,
    orders: list[torch.Generator],
    train_cfg: TrainConfig,
) -> tuple[Tensor, Tensor]:
    """One pass over the data in each trial's own order; loss and hit sums stay on device."""
    k, n, bs = model.num_trials, x.shape[0], train_cfg.batch_size
    perm = torch.stack([torch.randperm(n, generator=g) for g in orders]).to(x.device)
    loss_sum = torch.zeros(k, device=x.device)
    correct = torch.zeros(k, device=x.device)
    params = list(model.parameters())
    for lo in range(0, n, bs):
        idx = perm[:, lo : lo + bs]
        xb, yb = x[idx], y[idx]
        logits = model(xb)
        losses = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none")
        losses = losses.view(k, -1).mean(1)
        # Trials share no parameters, so one backward of the sum gives each its own gradient.
        grads = torch.autograd.grad(losses.sum(), params)
        optimizer.step(params, grads)
        with torch.no_grad():
            loss_sum += losses.detach() * idx.shape[1]
            correct += (logits.argmax(-1) == yb).sum(1)
    return loss_sum, correct


@torch.no_grad()
def evaluate_stack(model: StackedMLP, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-trial mean cross-entropy and accuracy ([K] each) in eval mode, on shared data."""
    was_training = model.training
    model.eval()
    k = model.num_trials
    loss_sum = torch.zeros(k, device=x.device)
    correct = torch.zeros(k, device=x.device)
    for lo in range(0, x.shape[0], _EVAL_CHUNK):
        xb, yb = x[lo : lo + _EVAL_CHUNK], y[lo : lo + _EVAL_CHUNK]
        logits = model(xb)
        target = yb.expand(k, -1)
        loss_sum += (
            F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
            .view(k, -1)
            .sum(1)
        )
        correct += (logits.argmax(-1) == target).sum(1)
    model.train(was_training)
    n = max(x.shape[0], 1)
    return loss_sum / n, correct / n


def _mix_seeds(seeds: Sequence[int]) -> int:
    """One mask-generator seed from every trial's seed (deterministic, order-sensitive)."""
    acc = 0
    for s in seeds:
        acc = (acc * 1_000_003 + int(s)) % (2**63 - 1)
    return acc


def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
