"""The dropout variant registry: everything one variant is, in one `DropoutVariant` entry.

An entry holds the variant's name; its own knobs (a `ModelConfig` field and a spec field each,
with bounds, default and scale); where its noise acts and the noise function that serves both one
network (`models.mlp`) and a stack of K trials (`models.batched`); whether trials of it can share a
stack; its training objective; and when a config of it trains what another variant's does
(dedupe, `studyd.analysis.canonical`). `ModelConfig`, the spec, the search space, `canonical`,
`batched`, the MLP builder and the CLI read `REGISTRY`; none of them lists variants. Like Optuna's
`distributions.DISTRIBUTION_CLASSES`, a new variant is one entry here and its noise function
(docs/ARCHITECTURE.md, "Adding a dropout variant").

The API process reads this module for names and knobs and never imports torch
(tests/api/test_scale.py), so the noise functions use tensor methods only and the objectives import
their torch code where they run.

A noise function is `noise(x, p, training, generator, knobs)`: `p` is a float in one network and a
[K, 1, 1] tensor of per-trial rates in a stack (`knobs` likewise: the variant's own knob values);
`generator` is None for torch's global stream, a generator, or in a stack a `TrialStreams` (each
trial its own stream over its own widths); a noise function draws through `draw`, which serves
all three. It is only called with p > 0 in one network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from torch import Generator, Tensor

    Rate = float | Tensor


class Noise(Protocol):
    def __call__(
        self,
        x: Tensor,
        p: Rate,
        training: bool,
        generator: Generator | None,
        knobs: Mapping[str, Rate],
    ) -> Tensor: ...


class Objective(Protocol):
    """(loss to minimise, logits for the batch's accuracy) of a network `net(x, samples=K)`."""

    def __call__(
        self, net: Any, x: Tensor, y: Tensor, knobs: Mapping[str, float]
    ) -> tuple[Tensor, Tensor]: ...


# A config's knobs → (the variant that trains the same networks, knobs it sets), or None.
SameAs = Callable[[Mapping[str, float]], "tuple[str, dict[str, float]] | None"]


@dataclass(frozen=True)
class Knob:
    """A variant's own number: `ModelConfig.<name>`, the spec's `dropout.<name>`, an Optuna param.

    `default` is the config's default, `space` the spec's default search space, `low..high` the
    spec's hard bounds (`hint` says what to write), `config_min` the config's own lower bound.
    `log`: a range's default scale; None means always linear (the spec's `log` is not read).
    `same_in_stack`: trials share a stack only when their values are equal.
    `choices`: a named option instead of a number (the config's field is one of these names, the
    spec's a name or a list of names, an Optuna categorical); `low`, `high`, `log` are unused.
    """

    name: str
    default: Any
    space: Any
    low: float
    high: float
    hint: str
    integer: bool = False
    log: bool | None = False
    config_min: float | None = None
    # Trials stack only with equal values (it shapes the computation, not a per-trial tensor).
    same_in_stack: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class DropoutVariant:
    """One dropout variant.

    `acts_on`: "activations" (noise at each site), "weights" (DropConnect's per-example masks on
    the weights of the Linear a site feeds: `models.dropconnect`, no noise function), "units"
    (a keep probability computed from each unit's drive: Standout's layers in
    `models.dropout`), or "nothing". `stackable`: trials can train in one stacked network.
    `objective`: None trains on one pass's cross-entropy. `same_as`: dedupe's reduction.
    """

    name: str
    acts_on: Literal["nothing", "activations", "weights", "units"]
    noise: Noise | None = None
    knobs: tuple[Knob, ...] = ()
    stackable: bool = False
    objective: Objective | None = None
    same_as: SameAs | None = None

    @property
    def noisy(self) -> bool:
        return self.acts_on != "nothing"

    @property
    def takes_rate(self) -> bool:
        """Whether `rates`/`input_rate` mean anything (Standout's π is its own rate)."""
        return self.acts_on in ("activations", "weights")


# ── noise functions ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class TrialStreams:
    """Where each trial of a stack draws: its own generator, over its own block of each row.

    `generators[k]` is trial k's stream (None: the trial has rate 0 at this site and, as in its
    own network, draws nothing; its row is 0). `shapes[k]` is the trial's own shape of a row
    (its widths, not the stack's padded ones): it draws that block, contiguous, as its own
    network draws it, so its draws do not depend on what shares the stack.
    """

    generators: Sequence[Generator | None]
    shapes: Sequence[tuple[int, ...]]


def draw(like: Tensor, kind: Literal["uniform", "normal"], generator: Any) -> Tensor:
    """A fresh tensor shaped like `like` of U[0, 1) or N(0, 1) draws.

    `generator`: None (torch's global stream), one generator, or a `TrialStreams` over `like`'s
    first dimension (a stack's trials), whose padding outside a trial's own block is 0.
    """
    if not isinstance(generator, TrialStreams):
        out = like.new_empty(like.shape)
        if kind == "uniform":
            return out.uniform_(generator=generator)
        return out.normal_(generator=generator)
    out = like.new_zeros(like.shape)
    for row, gen, shape in zip(out, generator.generators, generator.shapes, strict=True):
        if gen is None:
            continue
        own = like.new_empty(shape)
        own = own.uniform_(generator=gen) if kind == "uniform" else own.normal_(generator=gen)
        row[tuple(slice(0, n) for n in shape)] = own
    return out


def keep_mask(like: Tensor, p: Rate, generator: Any = None) -> Tensor:
    """m ~ Bernoulli(1−p) shaped like `like`, as 1.0/0.0 in its dtype: u ≥ p for u ~ U[0, 1).

    One uniform draw compared in place: on a CPU about half the time of `bernoulli_` or
    `F.dropout` (113 vs 205–214 µs for a 128×128 forward + backward, one thread).
    """
    return draw(like, "uniform", generator).ge_(p)


def standard_noise(x: Tensor, p: Rate, training: bool, generator: Any, knobs: Any) -> Tensor:
    """Inverted dropout: train x·m/(1−p) with m ~ Bernoulli(1−p); eval x (cs231n's second form)."""
    if not training:
        return x
    # Not F.dropout on CUDA, although fused: its draws differ from `keep_mask`'s, and a trial
    # must get the same masks in its own network as in a stack. The scale is folded into the
    # mask in place: one full-size multiply forward and one backward.
    return x * keep_mask(x, p, generator).div_(1.0 - p)


def vanilla_noise(x: Tensor, p: Rate, training: bool, generator: Any, knobs: Any) -> Tensor:
    """Dropout scaled at test time: train x·m with m ~ Bernoulli(1−p); eval x·(1−p).

    cs231n's first form: the expectation in training is (1−p)·x, so eval multiplies by 1−p.
    """
    if not training:
        return x * (1.0 - p)
    return x * keep_mask(x, p, generator)


def gaussian_noise(x: Tensor, p: Rate, training: bool, generator: Any, knobs: Any) -> Tensor:
    """Multiplicative Gaussian noise: train x·ε with ε ~ N(1, σ²), σ² = p/(1−p); eval x.

    σ² = p/(1−p) is the variance of Bernoulli(1−p)/(1−p), so the noise matches inverted dropout's
    first two moments (Srivastava et al. 2014, §10).
    """
    if not training:
        return x
    var = p / (1.0 - p)
    sigma = math.sqrt(var) if isinstance(var, float) else var.sqrt()
    return x * draw(x, "normal", generator).mul_(sigma).add_(1.0)


def multisample_noise(x: Tensor, p: Rate, training: bool, generator: Any, knobs: Any) -> Tensor:
    """Multi-Sample dropout's noise at a site, by its `multisample_average` form.

    "losses" (Inoue 2019): one inverted-dropout mask per pass; the objective runs K passes.
    "activations" (the seed's `MultiSampleDropout` module): the mean of K masked copies,
    x·(1/K)·Σ_k m_k/(1−p), m_k ~ Bernoulli(1−p) drawn one after another; eval x. Its noise has
    variance p/((1−p)·K): K masks averaged are weaker dropout, not K samples of it.
    """
    if not training or knobs["multisample_average"] == "losses":
        return standard_noise(x, p, training, generator, knobs)
    k = int(knobs["multisample_k"])
    kept = keep_mask(x, p, generator)
    for _ in range(k - 1):
        kept += keep_mask(x, p, generator)
    return x * kept.div_(k * (1.0 - p))


def standout_keep_prob(z: Tensor, inputs: Tensor, alpha: float, beta: float) -> Tensor:
    """Standout's keep probability with the standout network tied to the layer (Ba & Frey 2013).

    Ba & Frey's eq. 2, P(m_j = 1 | {a_i : i < j}) = f(Σ_i π_{j,i}·a_i), runs over the unit's
    inputs a_1..a_n and the bias unit a_0 = 1 (eq. 1's convention); f is the sigmoid and the
    standout weights are tied to the network's, π_{j,i} = α·w_{j,i} + β (w_{j,0} = b_j). The
    sum is α·z_j + β·(1 + Σ_i a_i) for the pre-activation z = Wa + b: the bias counts, and β
    weighs every input, not a constant.
    """
    return (alpha * z + beta * (1.0 + inputs.sum(-1, keepdim=True))).sigmoid()


def standout_mask(h: Tensor, keep: Tensor, training: bool) -> Tensor:
    """Mask `h` with m ~ Bernoulli(π) in training; scale by the expectation π in eval."""
    if training:
        # The mask is a sample, not a function of the weights: no gradient flows through π here.
        return h * keep.detach().bernoulli()
    return h * keep


# ── objectives ───────────────────────────────────────────────────────────────────────────────


def rdrop_objective(
    net: Any, x: Tensor, y: Tensor, knobs: Mapping[str, float]
) -> tuple[Tensor, Tensor]:
    """Two masks: ½·(CE₁ + CE₂ + α·symKL), α on Liang et al.'s scale (`objectives.rdrop_loss`)."""
    from models.objectives import rdrop_loss

    out = net(x, samples=2)
    return rdrop_loss(out[0], out[1], y, knobs["rdrop_alpha"]), out.mean(0)


def multisample_objective(
    net: Any, x: Tensor, y: Tensor, knobs: Mapping[str, float]
) -> tuple[Tensor, Tensor]:
    """K masks through the shared head: mean CE (`models.objectives.multisample_loss`).

    The seed's form (`multisample_average` "activations") averages the K masks at each site
    (`multisample_noise`), so one pass and its cross-entropy: CE(head(mean_k h·m_k/(1−p)), y).
    """
    from models.objectives import multisample_loss

    if knobs["multisample_average"] == "activations":
        logits = net(x)
        return multisample_loss(logits[None], y), logits
    k = int(knobs["multisample_k"])
    # Inoue (2019), eq. 1: L = (1/K)·Σ_k CE(f(x; m_k), y). K = 1 is one dropout pass, plain
    # dropout; `net(x, samples=1)` gives (B, C), so it is lifted to the (K, B, C) the loss reads.
    out = net(x, samples=k) if k > 1 else net(x)[None]
    return multisample_loss(out, y), out.mean(0)


# ── dedupe ───────────────────────────────────────────────────────────────────────────────────


def _rdrop_same_as(knobs: Mapping[str, float]) -> tuple[str, dict[str, float]] | None:
    # ½(CE(a) + CE(b)) over two independent inverted-dropout passes is Multi-Sample, K = 2.
    if knobs["rdrop_alpha"] != 0:
        return None
    return ("multisample", {"multisample_k": 2, "multisample_average": "losses"})


def _multisample_same_as(knobs: Mapping[str, float]) -> tuple[str, dict[str, float]] | None:
    # One mask per step is plain inverted dropout (in either form: a mean of one mask is it).
    return ("standard", {}) if knobs["multisample_k"] == 1 else None


# ── the registry ─────────────────────────────────────────────────────────────────────────────

MAX_SAMPLES = 16  # Multi-Sample's K: K forward passes per step on a shared server

# R-Dropout's α means the paper's α (Liang et al. 2021, eq. 3: CE₁ + CE₂ + α·½ symmetric KL);
# the seed's λ, a batch-summed KL over the averaged CE, is α = 2·B·λ (models/objectives.py).
RDROP_ALPHA = Knob(
    name="rdrop_alpha",
    default=1.0,
    space=[0.1, 5.0],
    low=0.0,
    high=100.0,
    hint="write an R-Dropout KL weight 0..100, e.g. [0.1, 5.0]",
    config_min=0.0,
)
MULTISAMPLE_K = Knob(
    name="multisample_k",
    default=4,
    space=[2, 4, 8],
    low=1,
    high=MAX_SAMPLES,
    hint=f"write a number of samples K of 1 to {MAX_SAMPLES}, e.g. [2, 4, 8]",
    integer=True,
    log=None,
    config_min=1,
)
# Which of Multi-Sample dropout's two forms: the mean of the K masks' losses (Inoue 2019, the
# paper) or the mean of K masked activations before the head (the seed's module).
MULTISAMPLE_AVERAGE = Knob(
    name="multisample_average",
    default="losses",
    space="losses",
    low=0,
    high=0,
    hint="write losses (Inoue's mean of K losses) or activations (mean of K masked activations)",
    log=None,
    choices=("losses", "activations"),
)
DROPCONNECT_SAMPLES = Knob(
    name="dropconnect_samples",
    default=100,
    space=100,
    low=0,
    high=10_000,
    hint="write a number of inference samples Z of 0 (the W·(1−p) rule) to 10000, e.g. 100",
    integer=True,
    log=None,
    config_min=0,
    same_in_stack=True,
)
STANDOUT_ALPHA = Knob(
    name="standout_alpha",
    default=1.0,
    space=[0.5, 2.0],
    low=-100.0,
    high=100.0,
    hint="write a Standout α between -100 and 100",
    log=None,
)
STANDOUT_BETA = Knob(
    name="standout_beta",
    default=0.0,
    # β weighs the sum of a layer's inputs (Ba & Frey's tied form): ±1 saturates π on digits
    # (128 units: val .13 at β = −1, .80 at +1, .95–.97 for |β| ≤ 0.1), so search near 0.
    space=[-0.1, 0.1],
    low=-100.0,
    high=100.0,
    hint="write a Standout β between -100 and 100",
    log=None,
)

# The order of the public `Variant` enum (and of the report's colours).
REGISTRY: tuple[DropoutVariant, ...] = (
    DropoutVariant("none", "nothing", stackable=True),
    DropoutVariant("standard", "activations", standard_noise, stackable=True),
    DropoutVariant("vanilla", "activations", vanilla_noise, stackable=True),
    DropoutVariant("gaussian", "activations", gaussian_noise, stackable=True),
    # DropConnect masks each weight per example, its own layer (models/dropconnect.py).
    DropoutVariant("dropconnect", "weights", knobs=(DROPCONNECT_SAMPLES,), stackable=True),
    DropoutVariant("standout", "units", knobs=(STANDOUT_ALPHA, STANDOUT_BETA)),
    # R-Dropout and Multi-Sample are objectives over inverted-dropout networks.
    DropoutVariant(
        "rdrop",
        "activations",
        standard_noise,
        knobs=(RDROP_ALPHA,),
        objective=rdrop_objective,
        same_as=_rdrop_same_as,
    ),
    DropoutVariant(
        "multisample",
        "activations",
        multisample_noise,
        knobs=(MULTISAMPLE_K, MULTISAMPLE_AVERAGE),
        objective=multisample_objective,
        same_as=_multisample_same_as,
    ),
)
# Every knob, in the order `ModelConfig` and the spec's `dropout` section list their fields (the
# JSON schema is public, so a new knob goes at the end).
KNOBS: tuple[Knob, ...] = (
    RDROP_ALPHA,
    MULTISAMPLE_K,
    STANDOUT_ALPHA,
    STANDOUT_BETA,
    DROPCONNECT_SAMPLES,
    MULTISAMPLE_AVERAGE,
)

VARIANT_NAMES: tuple[str, ...] = tuple(v.name for v in REGISTRY)
_BY_NAME: dict[str, DropoutVariant] = {v.name: v for v in REGISTRY}
_OWNER: dict[str, str] = {k.name: v.name for v in REGISTRY for k in v.knobs}


def dropout_variant(name: str) -> DropoutVariant:
    """The registry entry called `name`; ValueError naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(VARIANT_NAMES)
        raise ValueError(f"unknown variant {name!r}; use one of {known}") from None


def knob_owner(knob: str) -> str | None:
    """The variant whose own knob `knob` is (None for a field no variant owns)."""
    return _OWNER.get(knob)


def _check() -> None:
    names = [k.name for k in KNOBS]
    if len(set(VARIANT_NAMES)) != len(VARIANT_NAMES) or sorted(names) != sorted(_OWNER):
        raise AssertionError(
            "models.variants: variant names must be unique and KNOBS must list every entry's "
            f"knobs once: KNOBS {names}, entries' {sorted(_OWNER)}"
        )


_check()
