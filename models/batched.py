"""Batched trials: K trials of one depth trained at once as one stacked MLP (padded to the widest).

Weights are stacked as [K, in, out] and each layer is one `torch.baddbmm`, so K small MLPs cost
about one Python step instead of K (small MLPs are overhead-bound on CPU and leave a GPU idle).
Each trial keeps its own initialisation seed, data order, dropout rate and masks, learning rate,
weight decay and stop decision; a stopped trial is dropped from the stack and costs nothing more.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from models.config import ModelConfig, TrainConfig
from models.dropconnect import dropconnect_linear
from models.mlp import build_mlp, dropconnect_rates, dropout_sites
from models.module import DropoutClassifier
from models.training import EpochMetrics, TrainResult, gap_split, resolve_device
from models.variants import REGISTRY, TrialStreams, dropout_variant

# Variants whose noise is elementwise on activations (or on weights, per example), so one
# stacked tensor op per site serves every trial (`stackable` in models/variants.py). The others
# fall back to unbatched training.
BATCHABLE_VARIANTS: tuple[str, ...] = tuple(v.name for v in REGISTRY if v.stackable)
# Rows of the whole stack evaluated at once: K·rows·width activations must stay in cache (on a
# 2-core Xeon, 512 rows × 8 trials evaluated 2× faster than 8192 × 8).
_EVAL_ROWS = 4096
_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
}


class BatchingError(ValueError):
    """The given trials cannot be trained together in one stack."""


def batch_key(model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[Any, ...] | None:
    """What trials must share to train in one stack; None when the variant or family is not
    batchable.

    Rates, the variant's knobs (but those marked `same_in_stack`), learning rate, weight decay,
    momentum, epochs, seed and hidden widths may differ between trials: a stack pads every
    layer to its widest trial (`StackedMLP.from_configs`).
    """
    if model_cfg.variant not in BATCHABLE_VARIANTS or model_cfg.family != "mlp":
        # Only the MLP has a stacked network; other families train one trial at a time.
        return None
    use_input, pre, post = dropout_sites(model_cfg)
    entry = dropout_variant(model_cfg.variant)
    sites = (use_input, tuple(pre), tuple(post)) if entry.noisy else ()
    shared = tuple(getattr(model_cfg, k.name) for k in entry.knobs if k.same_in_stack)
    return (
        model_cfg.input_dim,
        model_cfg.num_classes,
        len(model_cfg.hidden),
        model_cfg.activation,
        model_cfg.variant,
        sites,
        shared,
        train_cfg.batch_size,
        train_cfg.optimizer,
        train_cfg.train_metrics,
    )


class StackedMLP(torch.nn.Module):
    """K MLPs of one architecture; `forward(x)` maps [K, B, in] (or shared [B, in]) to [K, B, C].

    Sites and rates follow `models.mlp.build_mlp`: `input` (rate `input_rate`), `pre_activation`
    and `hidden` (rate `rates[i]` of hidden layer i), `last_hidden` (the post site of the last
    layer). A variant whose noise acts on weights (`dropconnect`) instead masks the weights of
    the Linear each site feeds, a mask per example of each trial, with `build_mlp`'s combined
    per-Linear rates. The noise is the registry's function, the one a single network uses, with
    per-trial rates and knobs as [K, 1, 1] tensors.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        weights: Sequence[Tensor],
        biases: Sequence[Tensor],
        rates: Tensor,
        input_rate: Tensor,
        weight_rates: Tensor,
        knobs: dict[str, Tensor] | None = None,
        pad_mask: Tensor | None = None,
    ) -> None:
        super().__init__()
        entry = dropout_variant(cfg.variant)
        self.variant = entry.name
        self.noise = entry.noise
        self.on_weights = entry.acts_on == "weights"
        self.act = _ACTIVATIONS[cfg.activation]
        use_input, pre, post = dropout_sites(cfg)
        noisy = entry.acts_on == "activations"
        self.input_site = noisy and use_input
        self.pre_sites = [noisy and on for on in pre]
        self.post_sites = [noisy and on for on in post]
        # One flat parameter; each W/b is a contiguous [K, ...] block of it (bmm needs contiguous
        # batches), so the optimizer updates every weight of every trial in a few ops per step.
        self.shapes = [t.shape for pair in zip(weights, biases, strict=True) for t in pair]
        parts = [t.reshape(-1) for pair in zip(weights, biases, strict=True) for t in pair]
        self.flat = torch.nn.Parameter(torch.cat(parts))
        # Per-trial rates shaped [layers, K, 1, 1] / [K, 1, 1]: they broadcast over [K, B, width].
        self.register_buffer("rates", rates)
        self.register_buffer("input_rate", input_rate)
        self.register_buffer("weight_rates", weight_rates)
        # The variant's own knobs, one value per trial, [K, 1, 1] each.
        self.knob_names = list(knobs or {})
        for name, values in (knobs or {}).items():
            self.register_buffer(f"knob_{name}", values)
        # Where masks come from: one generator per trial (`use_trial_streams`).
        self.streams: list[torch.Generator] = []
        self.seeds: list[int] = []
        self.mask_states: list[Tensor] = []
        # Each trial's own layer widths [in, *hidden, classes] (the stack's are the widest), and
        # Python copies of the rates: which trials draw at a site, without a device sync.
        own = [cfg.input_dim, *cfg.hidden, cfg.num_classes]
        self.dims: list[list[int]] = [list(own) for _ in range(input_rate.shape[0])]
        self.site_rates = {
            "input": input_rate.flatten().tolist(),
            "layer": rates.flatten(1).tolist(),
            "weight": weight_rates.flatten(1).tolist(),
        }
        # Knobs every trial of the stack shares (`same_in_stack`), as Python values.
        self.shared_knobs = {k.name: getattr(cfg, k.name) for k in entry.knobs if k.same_in_stack}
        # 1 where `flat` holds a trial's own weight, 0 on padding (None: nothing is padded).
        self.register_buffer("pad_mask", pad_mask)

    @classmethod
    def from_configs(cls, cfgs: Sequence[ModelConfig], seeds: Sequence[int]) -> StackedMLP:
        """Stack of freshly initialised trials, trial k from `seeds[k]`.

        Trials of one depth but other widths are padded to the widest with zero weights and
        biases. A padded unit's pre-activation is 0, and relu/gelu/tanh(0) = 0 under any
        multiplicative noise, so it feeds nothing forward; the rows fed by it are 0 too, so it
        gets no gradient back. `pad_mask` zeroes the padding's gradient all the same, so each
        trial computes exactly its own network whatever the variant.
        """
        first = cfgs[0]
        widths = [max(w) for w in zip(*(c.hidden for c in cfgs), strict=True)]
        dims = [first.input_dim, *widths, first.num_classes]
        started = [_initial_linears(c, s) for c, s in zip(cfgs, seeds, strict=True)]
        per_trial = [linears for linears, _ in started]
        weights = [
            torch.stack([_padded(t[i][0], dims[i], dims[i + 1]) for t in per_trial])
            for i in range(len(dims) - 1)
        ]
        biases = [
            torch.stack([_padded(t[i][1], 1, dims[i + 1]) for t in per_trial])
            for i in range(len(dims) - 1)
        ]
        pad_mask = None
        if any(list(c.hidden) != dims[1:-1] for c in cfgs):
            blocks = [
                _padded(torch.ones_like(t[i][j]), *block.shape[-2:])
                for i, pair in enumerate(zip(weights, biases, strict=True))
                for j, block in enumerate(pair)
                for t in per_trial
            ]
            pad_mask = torch.cat([b.reshape(-1) for b in blocks])
        rates = [c.layer_rates() for c in cfgs]
        on_weights = dropout_variant(first.variant).acts_on == "weights"
        weight_rates = [
            dropconnect_rates(c, r) if on_weights else [0.0] * len(dims[1:])
            for c, r in zip(cfgs, rates, strict=True)
        ]
        knobs = {
            name: _per_trial([c.variant_knobs()[name] for c in cfgs])
            for name in first.variant_knobs()
        }
        stack = cls(
            first,
            weights,
            biases,
            _per_layer(rates),
            _per_trial([c.input_rate for c in cfgs]),
            _per_layer(weight_rates),
            knobs,
            pad_mask,
        )
        stack.dims = [[c.input_dim, *c.hidden, c.num_classes] for c in cfgs]
        # The configs' own rates (doubles, as each trial's network holds them; the tensors are
        # float32): a mask's threshold must round as in the trial's own network.
        stack.site_rates = {
            "input": [c.input_rate for c in cfgs],
            "layer": [list(col) for col in zip(*rates, strict=True)],
            "weight": [list(col) for col in zip(*weight_rates, strict=True)],
        }
        stack.seeds = list(seeds)
        stack.mask_states = [state for _, state in started]
        stack.use_trial_streams(torch.device("cpu"))
        return stack

    @property
    def num_trials(self) -> int:
        return self.shapes[0][0]

    def layers(self) -> list[tuple[Tensor, Tensor]]:
        """(W [K, in, out], b [K, 1, out]) of each Linear: views of `flat`."""
        return _pairs(_blocks(self.flat, self.shapes))

    def trial_of_each_weight(self) -> Tensor:
        """Index of the trial owning each element of `flat` (for per-trial optimizer knobs)."""
        owners = [
            torch.arange(s[0], device=self.flat.device).repeat_interleave(math.prod(s[1:]))
            for s in self.shapes
        ]
        return torch.cat(owners)

    def use_trial_streams(self, device: torch.device) -> None:
        """Give each trial its own mask stream: the one `train_model` draws its masks from.

        On a CPU that is torch's generator right after the trial's initialisation; on CUDA the
        device generator seeded with the trial's seed (`train_model` builds on the CPU). A
        trial's masks then depend on its seed alone, not on what else shares the stack.
        """
        if device.type == "cpu":
            self.streams = [torch.Generator().set_state(s) for s in self.mask_states]
        else:
            self.streams = [torch.Generator(device=device).manual_seed(s) for s in self.seeds]

    def _site_streams(self, rates: list[float]) -> list[torch.Generator | None]:
        # A trial whose rate here is 0 has no noise at this site in its own network: no draw.
        return [g if r > 0 else None for g, r in zip(self.streams, rates, strict=True)]

    def _generator(self, rates: list[float], width: int | None, rows: int) -> Any:
        """The `generator` argument of a noise function at an activation site.

        `width`: index into the trials' own widths (None: the input, never padded).
        """
        streams = self._site_streams(rates)
        shapes = [(rows, d[0 if width is None else width]) for d in self.dims]
        return TrialStreams(streams, shapes)

    def keep_trials(self, keep: Tensor) -> None:
        """Drop every trial not in `keep` (indices into the current stack)."""
        rows = keep.tolist()
        self.streams = [self.streams[k] for k in rows]
        self.dims = [self.dims[k] for k in rows]
        self.site_rates["input"] = [self.site_rates["input"][k] for k in rows]
        for site in ("layer", "weight"):
            self.site_rates[site] = [[r[k] for k in rows] for r in self.site_rates[site]]
        self.flat = torch.nn.Parameter(_keep_rows(self.flat.detach(), self.shapes, keep))
        if self.pad_mask is not None:
            self.pad_mask = _keep_rows(self.pad_mask, self.shapes, keep)
        self.shapes = [torch.Size((len(keep), *s[1:])) for s in self.shapes]
        self.rates = self.rates[:, keep]
        self.weight_rates = self.weight_rates[:, keep]
        self.input_rate = self.input_rate[keep]
        for name in self.knob_names:
            setattr(self, f"knob_{name}", getattr(self, f"knob_{name}")[keep])

    def export_trial(
        self, model_cfg: ModelConfig, train_cfg: TrainConfig, k: int
    ) -> DropoutClassifier:
        """Trial k as the `DropoutClassifier` `train_model` returns (eval mode), weights copied."""
        module = DropoutClassifier(model_cfg, train_cfg).to(self.flat.device)
        linears = [m for m in module.net.layers if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for lin, (w, b) in zip(linears, self.layers(), strict=True):
                fan_out, fan_in = lin.weight.shape  # this trial's own widths, not the padding
                lin.weight.copy_(w[k, :fan_in, :fan_out].T)
                lin.bias.copy_(b[k, 0, :fan_out])
        return module.eval()

    def forward(self, x: Tensor) -> Tensor:
        h = x
        if self.input_site:
            h = h.expand(self.num_trials, *h.shape[-2:])
            gen = self._generator(self.site_rates["input"], None, h.shape[-2])
            h = self._noise(h, self.input_rate, gen)
        for i, (w, b) in enumerate(self.layers()):
            head = i == len(self.pre_sites)
            if self.on_weights:
                h = self._weight_noise(h, w, b, i, None if head else self.act)
                if head:
                    return h
                continue
            h = torch.baddbmm(b, h, w) if h.dim() == 3 else h @ w + b
            if head:
                return h
            gen = self._generator(self.site_rates["layer"][i], i + 1, h.shape[-2])
            if self.pre_sites[i]:
                h = self._noise(h, self.rates[i], gen)
            h = self.act(h)
            if self.post_sites[i]:
                h = self._noise(h, self.rates[i], gen)
        raise AssertionError("unreachable: the head returns")

    def _weight_noise(self, h: Tensor, w: Tensor, b: Tensor, i: int, act: Any) -> Tensor:
        """DropConnect's Linear i (models/dropconnect.py), trial k masking its own block only."""
        h = h.expand(self.num_trials, *h.shape[-2:])
        return dropconnect_linear(
            h,
            w,
            b,
            self.weight_rates[i],
            training=self.training,
            samples=int(self.shared_knobs.get("dropconnect_samples", 0)),
            act=act,
            streams=self._site_streams(self.site_rates["weight"][i]),
            own=[(d[i], d[i + 1]) for d in self.dims],
            rates=self.site_rates["weight"][i],
        )

    def _noise(self, h: Tensor, p: Tensor, generator: Any) -> Tensor:
        """The variant's noise (models/variants.py) with per-trial rate p ([K, 1, 1])."""
        assert self.noise is not None
        knobs = {name: getattr(self, f"knob_{name}") for name in self.knob_names}
        return self.noise(h, p, self.training, generator, knobs)


def _per_trial(values: Sequence[float]) -> Tensor:
    """One value per trial as a [K, 1, 1] tensor: it broadcasts over [K, B, width]."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1)


def _per_layer(rates: Sequence[Sequence[float]]) -> Tensor:
    """[K][layers] rates as a [layers, K, 1, 1] tensor."""
    t = torch.tensor(rates, dtype=torch.float32)
    return t.T.reshape(t.shape[1], t.shape[0], 1, 1).contiguous()


def _padded(t: Tensor, rows: int, cols: int) -> Tensor:
    """`t` ([r, c]) in the top-left corner of a [rows, cols] block of zeros."""
    return F.pad(t, (0, cols - t.shape[1], 0, rows - t.shape[0]))


def _blocks(flat: Tensor, shapes: Sequence[torch.Size]) -> list[Tensor]:
    return [v.view(s) for v, s in zip(flat.split([s.numel() for s in shapes]), shapes, strict=True)]


def _pairs(tensors: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
    return list(zip(tensors[::2], tensors[1::2], strict=True))


def _keep_rows(flat: Tensor, shapes: Sequence[torch.Size], keep: Tensor) -> Tensor:
    """`flat` with only the trials in `keep` left in each block."""
    return torch.cat([b[keep].reshape(-1) for b in _blocks(flat, shapes)])


def _initial_linears(cfg: ModelConfig, seed: int) -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
    """(W [in, out], b [1, out]) of each Linear exactly as `train_model` initialises them, and
    the CPU generator's state right after: where `train_model`'s masks start on a CPU.

    `train_model` seeds torch's global generator with the trial's seed and builds the network;
    doing the same under `fork_rng` gives bit-identical starting weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_mlp(cfg)
        state = torch.get_rng_state()
    linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    pairs = [(m.weight.detach().T.contiguous(), m.bias.detach().view(1, -1)) for m in linears]
    return pairs, state


class StackedOptimizer:
    """SGD (momentum), Adam or AdamW over a flat parameter shared by K trials, per-trial lr/wd.

    `owner[j]` is the trial of element j. Same update rules as torch.optim's defaults: Adam's
    weight decay is L2 added to the gradient; AdamW's is decoupled, p ← p·(1 − lr·wd); SGD's
    momentum buffer is b ← μ·b + g.
    """

    def __init__(
        self, kind: str, param: Tensor, owner: Tensor, cfgs: Sequence[TrainConfig]
    ) -> None:
        self.kind = kind
        knobs = [[c.lr, c.weight_decay, c.momentum] for c in cfgs]
        self.knobs = torch.tensor(knobs, dtype=param.dtype, device=param.device)  # [K, 3]
        self.has_wd = any(c.weight_decay > 0 for c in cfgs)  # a Python bool: no device sync
        self.steps = 0
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)
        self._spread(owner)
        self.betas, self.eps = (0.9, 0.999), 1e-8

    def _spread(self, owner: Tensor) -> None:
        # Per-element copies of the knobs: one full-size multiply beats K block-wise ones.
        self.lr, self.wd, self.momentum = self.knobs[owner].T.contiguous()

    def keep_trials(self, keep: Tensor, shapes: Sequence[torch.Size], owner: Tensor) -> None:
        """Keep the state of trials `keep`; `shapes` are the blocks before, `owner` after."""
        self.m, self.v = _keep_rows(self.m, shapes, keep), _keep_rows(self.v, shapes, keep)
        self.knobs = self.knobs[keep]
        self._spread(owner)

    @torch.no_grad()
    def step(self, p: Tensor, g: Tensor) -> None:
        self.steps += 1
        if self.kind == "adamw":
            p.mul_(1.0 - self.lr * self.wd)
        elif self.has_wd:
            g = g.add(p * self.wd)
        if self.kind == "sgd":
            self.m.mul_(self.momentum).add_(g)
            p.sub_(self.m * self.lr)
            return
        b1, b2 = self.betas
        bc1, bc2 = 1.0 - b1**self.steps, 1.0 - b2**self.steps
        self.m.lerp_(g, 1.0 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        denom = self.v.sqrt().div_(math.sqrt(bc2)).add_(self.eps)
        p.sub_(self.m.div(denom).mul_(self.lr).div_(bc1))


OnBatchedEpoch = Callable[[int, list[EpochMetrics | None]], Sequence[bool]]


def train_batched(
    model_cfgs: Sequence[ModelConfig],
    train_cfgs: Sequence[TrainConfig],
    data: Any,
    *,
    device: str | torch.device = "auto",
    on_epoch: OnBatchedEpoch | None = None,
    interrupt: Callable[[], bool] | None = None,
) -> list[TrainResult]:
    """Train K trials of one architecture at once; result k is `train_model`'s for trial k.

    Weights, data order and masks are `train_model`'s for each seed: each trial draws its masks
    from its own stream over its own widths, so its result does not depend on its stack (alone,
    in any stack, padded or not: the same to float tolerance). `on_epoch(epoch, metrics)` gets
    one `EpochMetrics` per trial (None for trials already finished) and returns one stop flag per
    trial. `seconds` is the stack's epoch time divided by the trials it trained: the amortised
    cost of each trial's epoch. `interrupt()`, asked between batches, True abandons the epoch
    under way for every trial still training.
    """
    keys = {batch_key(m, t) for m, t in zip(model_cfgs, train_cfgs, strict=True)}
    if None in keys or len(keys) != 1:
        raise BatchingError(f"trials need one batchable architecture to share a stack: {keys}")
    dev = resolve_device(device)
    seeds = [t.seed for t in train_cfgs]
    model = StackedMLP.from_configs(model_cfgs, seeds).to(dev)
    model.use_trial_streams(dev)
    optimizer = StackedOptimizer(
        train_cfgs[0].optimizer, model.flat, model.trial_of_each_weight(), train_cfgs
    )
    orders = [torch.Generator(device=dev).manual_seed(s) for s in seeds]
    splits = data.to(dev)
    running = train_cfgs[0].train_metrics == "running"
    x_gap, y_gap = gap_split(splits)
    batch_size = train_cfgs[0].batch_size
    results = [TrainResult(model, param_count=_param_count(m), device=str(dev)) for m in model_cfgs]
    active = list(range(len(seeds)))  # trial index of each stack row
    for epoch in range(max(t.epochs for t in train_cfgs)):
        started = time.perf_counter()
        model.train()
        order = [orders[k] for k in active]
        running_sums = _train_epoch(model, optimizer, splits, order, batch_size, running, interrupt)
        if running_sums is None:
            for k in active:
                results[k].stopped_early = True
            break
        sums = running_sums if running else _loss_correct_sums(model, x_gap, y_gap)
        val = _loss_correct_sums(model, splits.x_val, splits.y_val)
        n_train = len(splits.y_train) if running else len(y_gap)
        n_val = len(splits.y_val)
        stats = torch.stack([sums[0] / n_train, sums[1] / n_train, val[0] / n_val, val[1] / n_val])
        rows = stats.T.tolist()  # the epoch's one device sync
        seconds = (time.perf_counter() - started) / len(active)
        metrics: list[EpochMetrics | None] = [None] * len(seeds)
        for row, k in enumerate(active):
            metrics[k] = EpochMetrics(epoch, *rows[row], seconds)
            results[k].history.append(metrics[k])
        flags = list(on_epoch(epoch, metrics)) if on_epoch else [False] * len(seeds)
        keep = []
        for row, k in enumerate(active):
            m, last = metrics[k], epoch + 1 >= train_cfgs[k].epochs
            diverged = not (math.isfinite(m.train_loss) and math.isfinite(m.val_loss))
            if diverged or flags[k] or last:
                results[k].diverged = diverged
                results[k].stopped_early = not last
                results[k].model = model.export_trial(model_cfgs[k], train_cfgs[k], row)
            else:
                keep.append(row)
        if not keep:
            break
        if len(keep) < len(active):
            idx = torch.tensor(keep, device=dev)
            shapes = model.shapes
            model.keep_trials(idx)
            optimizer.keep_trials(idx, shapes, model.trial_of_each_weight())
            active = [active[row] for row in keep]
    return results


def _train_epoch(
    model: StackedMLP,
    optimizer: StackedOptimizer,
    splits: Any,
    orders: list[torch.Generator],
    batch_size: int,
    running: bool,
    interrupt: Callable[[], bool] | None = None,
) -> Tensor | None:
    """One pass over the data, each trial in its own order; returns [2, K] running sums, or
    None when `interrupt()` said stop between two batches.

    Sums (loss·batch, correct) stay on the device; with `running` off they are not kept.
    """
    x, y = splits.x_train, splits.y_train
    k, n, bs = model.num_trials, len(y), batch_size
    perm = torch.stack([torch.randperm(n, generator=g, device=x.device) for g in orders])
    sums = torch.zeros(2, k, device=x.device)
    for lo in range(0, n, bs):
        if interrupt is not None and interrupt():
            return None
        idx = perm[:, lo : lo + bs]
        xb, yb = x[idx], y[idx]
        logits = model(xb)
        losses = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none")
        losses = losses.view(k, -1).mean(1)
        # Trials share no parameters, so one backward of the sum gives each its own gradient.
        (grad,) = torch.autograd.grad(losses.sum(), model.flat)
        if model.pad_mask is not None:
            grad = grad * model.pad_mask
        optimizer.step(model.flat, grad)
        if running:
            with torch.no_grad():
                sums[0] += losses * idx.shape[1]
                sums[1] += (logits.argmax(-1) == yb).sum(1)
    return sums


@torch.no_grad()
def _loss_correct_sums(model: StackedMLP, x: Tensor, y: Tensor) -> Tensor:
    """[2, K]: per-trial summed cross-entropy and correct count, eval mode, shared data."""
    was_training = model.training
    model.eval()
    k = model.num_trials
    sums = torch.zeros(2, k, device=x.device)
    chunk = max(256, _EVAL_ROWS // k)
    for lo in range(0, len(y), chunk):
        logits = model(x[lo : lo + chunk])
        target = y[lo : lo + chunk].expand(k, -1)
        ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none")
        sums[0] += ce.view(k, -1).sum(1)
        sums[1] += (logits.argmax(-1) == target).sum(1)
    model.train(was_training)
    return sums


def evaluate_stack(model: StackedMLP, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-trial mean cross-entropy and accuracy ([K] each) in eval mode, on shared data."""
    sums = _loss_correct_sums(model, x, y)
    return sums[0] / len(y), sums[1] / len(y)


def _param_count(cfg: ModelConfig) -> int:
    """Weights and biases of the trial's own network (a stack's padding is not its own)."""
    dims = [cfg.input_dim, *cfg.hidden, cfg.num_classes]
    return sum((i + 1) * o for i, o in zip(dims, dims[1:], strict=False))
