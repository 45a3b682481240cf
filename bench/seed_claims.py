"""The seeds' claims as experiments: each `Experiment` trains its arms for the seeds it is given
and turns all seeds so far into `Claim`s, one paired effect per seed.

Sources (the Chinese articles in the seeds): cs231n's dropout assignment (李理, 卷积神经网络之
Dropout), d2l's 丢弃法 chapter, the Dropout/R-Dropout/Multi-Sample/Gaussian tricks article, and
the inverted-scaling derivation (深度学习中的 Dropout). Each experiment's docstring is its design,
written before its run: data, net, arms, what each claim measures and why that can decide it.
The experiments that choose a setting on validation first are in bench/seed_tuned.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.seed_measures import eval_ops, expectation_error, ms, msv
from bench.seed_rule import Looks
from bench.seed_runs import Run, describe, epochs_to_reach, paired, train_arms, train_each
from models.config import ModelConfig, TrainConfig
from models.data import DatasetSplits
from models.dropout import GaussianDropout, StandardDropout, VanillaDropout

# The seed's Gaussian dropout example: ε ~ N(1, 0.1²). studyd's gaussian variant takes a rate p
# with σ² = p/(1−p), so σ = 0.1 is p = σ²/(1+σ²).
SEED_SIGMA = 0.1
SEED_SIGMA_RATE = SEED_SIGMA**2 / (1 + SEED_SIGMA**2)
# Multi-Sample's "faster convergence": epochs until the eval-mode training loss is ≤ this.
MULTISAMPLE_TARGET_LOSS = 0.05
MULTISAMPLE_FORMS = ("losses", "activations")

Arms = dict[str, list[Any]]  # an arm's name → one value (a `Run`, a number) per seed


@dataclass(frozen=True)
class Claim:
    """One claim and its per-seed effects (positive = the claimed direction, in `unit`).

    Directional claims hold when the interval lies above `above`; equivalence claims (`within`
    set) when it lies within ±`within`. `censored`: seeds where an arm never reached its target
    (its effect is a bound); `blind`: no arm reached it in any seed, so no seed count decides.
    """

    label: str
    claim: str
    effect: str
    unit: str
    effects: tuple[float, ...]
    numbers: str
    above: float = 0.0
    within: float | None = None
    censored: int = 0
    blind: bool = False


@dataclass(frozen=True)
class Budget:
    """How much each experiment trains and when the rule looks (`--quick` shrinks both)."""

    looks: Looks
    cs231n_epochs: int
    d2l_epochs: int
    rdrop_epochs: int
    device: str
    # Settings chosen on validation use these seeds, never a comparison's (0, 1, …).
    selection_seeds: tuple[int, ...] = (1000, 1001)
    # 1e-1 and 3e-1 added after both rules chose 3e-2, the old top, and then vanilla chose 1e-1
    # (2026-12-07): a grid must bracket what it picks.
    lr_grid: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    # Inside the range Liang et al. (2021) tune α over (0.1…5; studyd's default search space).
    # 0.1 added after α = 0.3, the old bottom, was chosen (2026-12-07).
    alpha_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)

    def describe(self) -> str:
        return (
            f"looks at {', '.join(map(str, self.looks.sizes))} seeds (α = {self.looks.alpha}, "
            f"{100 * self.looks.level:.2f} % per look); epochs cs231n {self.cs231n_epochs}, "
            f"d2l {self.d2l_epochs}, R-Dropout {self.rdrop_epochs}; selection seeds "
            f"{list(self.selection_seeds)}, lr grid {list(self.lr_grid)}, α grid "
            f"{list(self.alpha_grid)}"
        )


@dataclass(frozen=True)
class Experiment:
    """Claims that share arms: `train(seeds)` trains every arm for those seeds; `claims(arms)`
    reads all seeds so far. `chosen` records what a validation step picked before any seed."""

    name: str
    train: Callable[[Sequence[int]], Arms]
    claims: Callable[[Arms], list[Claim]]
    chosen: dict[str, float] = field(default_factory=dict)


def _faster(label: str, form: str, one: list[Run], multi: list[Run], epochs: int) -> Claim:
    one_e = [epochs_to_reach(r, MULTISAMPLE_TARGET_LOSS) for r in one]
    multi_e = [epochs_to_reach(r, MULTISAMPLE_TARGET_LOSS) for r in multi]
    never = epochs + 1
    censored = sum(a == never or b == never for a, b in zip(one_e, multi_e, strict=True))
    neither = sum(a == never and b == never for a, b in zip(one_e, multi_e, strict=True))
    return Claim(
        label,
        f"multisample ({form}): K=4 masks reach train loss {MULTISAMPLE_TARGET_LOSS} in fewer "
        "epochs than one mask at p=.5",
        "epochs one mask − K=4",
        "epochs",
        tuple(float(a - b) for a, b in zip(one_e, multi_e, strict=True)),
        f"epochs: one mask {msv(one_e)}, K=4 {msv(multi_e)} (of {epochs}; never = {never})",
        censored=censored,
        blind=neither == len(one_e),
    )


def cs231n(data: DatasetSplits, budget: Budget) -> Experiment:
    """cs231n's experiment on 500 mnist1d examples, and the claims that share its net.

    Net and solver: 40-500-10 (cs231n's two-layer net), Adam 1e-3, batch 100, dropout after the
    hidden layer; digits is too easy (94 % validation from 500 examples). Arms, paired by seed
    (same init and data order): p = 0, inverted p = .5 and .75; Gaussian at the seed's σ = 0.1
    and at σ² = p/(1−p), p = .75 (σ = 1.73, inverted dropout's variance); Multi-Sample K = 4 at
    p = .5 in both forms (`multisample_average`: Inoue's mean of K losses; the seed's mean of K
    masked activations). Claims: p = 0 memorises the training set (train acc above 99 %);
    p = .75 raises validation accuracy and shrinks the train−val gap; each Gaussian shrinks it;
    each Multi-Sample form reaches train loss 0.05 in fewer epochs (an arm that never does is
    censored: epochs + 1, a bound) and gives higher validation accuracy than one mask at .5.
    """
    model = ModelConfig(input_dim=data.input_dim, num_classes=data.num_classes, hidden=[500])
    train = TrainConfig(epochs=budget.cs231n_epochs, batch_size=100, optimizer="adam", lr=1e-3)
    dev = budget.device

    def train_seeds(seeds: Sequence[int]) -> Arms:
        std = model.model_copy(update={"variant": "standard"})
        none, half, drop = train_arms(data, std, train, [[0.0], [0.5], [0.75]], seeds, dev)
        gauss = model.model_copy(update={"variant": "gaussian"})
        small, big = train_arms(data, gauss, train, [[SEED_SIGMA_RATE], [0.75]], seeds, dev)
        arms = {"none": none, "half": half, "drop": drop, "g_small": small, "g_big": big}
        for form in MULTISAMPLE_FORMS:
            cfg = model.model_copy(
                update={"variant": "multisample", "rates": [0.5], "multisample_average": form}
            )
            arms[form] = train_each(data, cfg, train, seeds, dev)
        return arms

    def claims(arms: Arms) -> list[Claim]:
        none, drop = arms["none"], arms["drop"]
        gap, val = (lambda r: r.val_gap), (lambda r: r.val_acc)
        base = describe("p=0", none, "train_acc", "val_acc")
        out = [
            Claim(
                "cs231n-memorise",
                "cs231n: without dropout the 500 training examples are memorised (train ≥ 99 %)",
                "train acc at p=0",
                "points",
                tuple(100 * r.train_acc for r in none),
                base,
                above=99.0,
            ),
            Claim(
                "cs231n-val-acc",
                "cs231n: dropout p=.75 gives higher validation accuracy than none",
                "val acc p=.75 − p=0",
                "points",
                tuple(paired(drop, none, val)),
                f"{base}; {describe('p=.75', drop, 'train_acc', 'val_acc')}",
            ),
            Claim(
                "cs231n-gap",
                "cs231n: dropout p=.75 shrinks the train−val gap",
                "gap p=0 − gap p=.75",
                "points",
                tuple(paired(none, drop, gap)),
                f"gap p=0 {ms(none, gap)}, p=.75 {ms(drop, gap)}",
            ),
        ]
        for label, arm, what in (
            ("gaussian-seed-sigma-gap", "g_small", f"the seed's σ={SEED_SIGMA}"),
            ("gaussian-matched-gap", "g_big", "σ²=p/(1−p) at p=.75, σ=1.73"),
        ):
            out.append(
                Claim(
                    label,
                    f"gaussian: N(1, σ²) noise at {what} shrinks the train−val gap",
                    f"gap p=0 − gap gaussian ({what.split(',')[0]})",
                    "points",
                    tuple(paired(none, arms[arm], gap)),
                    f"gap p=0 {ms(none, gap)}, gaussian {ms(arms[arm], gap)}; "
                    f"{describe('gaussian', arms[arm], 'val_acc')}",
                )
            )
        for form in MULTISAMPLE_FORMS:
            multi, half = arms[form], arms["half"]
            out += [
                _faster(f"multisample-{form}-faster", form, half, multi, budget.cs231n_epochs),
                Claim(
                    f"multisample-{form}-val-acc",
                    f"multisample ({form}): K=4 masks generalise better than one mask at p=.5",
                    "val acc K=4 − one mask",
                    "points",
                    tuple(paired(multi, half, val)),
                    f"{describe('one mask', half, 'val_acc')}; {describe('K=4', multi, 'val_acc')}",
                ),
            ]
        return out

    return Experiment("cs231n", train_seeds, claims)


def d2l(data: DatasetSplits, budget: Budget) -> Experiment:
    """d2l's 丢弃法 MLP where the plain net does not memorise within the budget.

    d2l's net and solver: two hidden layers of 256, dropout .2 then .5 after them, SGD lr .5 (no
    momentum), batch 256, d2l's own 10 epochs; studyd's (PyTorch's) init instead of d2l's
    N(0, 0.01²). Data: mnist1d's 3,200 training sequences (40 features), not mnist-5k: on
    mnist-5k both nets memorise the 3,000 images within 10 epochs (train .999 / .994), so the
    accuracy gap and the test accuracy are one number; on mnist1d the plain net reaches train
    ≈ .55, test ≈ .45 (seeds 0–1, a pilot), a gap that is not saturation. (d2l's Fashion-MNIST
    is not available offline here.) Claims, paired by seed: dropout shrinks the train−test gap
    in accuracy and in cross-entropy (test − train nats), at test accuracy within ±1 point.
    """
    model = ModelConfig(
        input_dim=data.input_dim,
        num_classes=data.num_classes,
        hidden=[256, 256],
        variant="standard",
    )
    train = TrainConfig(
        epochs=budget.d2l_epochs, batch_size=256, optimizer="sgd", lr=0.5, momentum=0.0
    )

    def train_seeds(seeds: Sequence[int]) -> Arms:
        none, drop = train_arms(data, model, train, [[0.0, 0.0], [0.2, 0.5]], seeds, budget.device)
        return {"none": none, "drop": drop}

    def claims(arms: Arms) -> list[Claim]:
        none, drop = arms["none"], arms["drop"]
        numbers = (
            f"{describe('none', none, 'train_acc', 'test_acc')}; "
            f"{describe('p=.2/.5', drop, 'train_acc', 'test_acc')}"
        )
        return [
            Claim(
                "d2l-gap-acc",
                "d2l: dropout .2/.5 shrinks the train−test accuracy gap of the 256-256 MLP",
                "gap none − gap dropout",
                "points",
                tuple(paired(none, drop, lambda r: r.gap)),
                numbers,
            ),
            Claim(
                "d2l-gap-ce",
                "d2l: …and the gap in cross-entropy (test − train)",
                "CE gap none − CE gap dropout",
                "‰ nats",
                tuple(paired(none, drop, lambda r: r.loss_gap, scale=1000.0)),
                f"CE gap none {ms(none, lambda r: r.loss_gap)}, dropout "
                f"{ms(drop, lambda r: r.loss_gap)} nats",
            ),
            Claim(
                "d2l-comparable-acc",
                "d2l: …at comparable test accuracy (within ±1 point)",
                "test acc dropout − none",
                "points",
                tuple(paired(drop, none, lambda r: r.test_acc)),
                numbers,
                within=1.0,
            ),
        ]

    return Experiment("d2l", train_seeds, claims)


def arithmetic(budget: Budget, p: float = 0.5, draws: int = 200) -> Experiment:
    """The scaling rules' arithmetic: each rule's mean training output over `draws` masks equals
    its test output (within ±0.5 %, Monte Carlo per seed), and inverted dropout adds no torch op
    at test time while vanilla multiplies by 1−p (op count, exact: margin 0)."""
    rules = {"vanilla": VanillaDropout, "inverted": StandardDropout, "gaussian": GaussianDropout}

    def train_seeds(seeds: Sequence[int]) -> Arms:
        return {
            name: [100 * expectation_error(module(p), seed, draws) for seed in seeds]
            for name, module in rules.items()
        }

    def claims(arms: Arms) -> list[Claim]:
        out = [
            Claim(
                f"expectation-{name}",
                f"{name}: the mean training output equals the test output, p={p}",
                "E[train] / test − 1",
                "%",
                tuple(arms[name]),
                f"{draws} masks × 256×512 activations per seed; max |error| "
                f"{max(abs(e) for e in arms[name]):.3f} %",
                within=0.5,
            )
            for name in rules
        ]
        ops = {v: eval_ops(v, p) for v in ("none", "standard", "vanilla")}
        out.append(
            Claim(
                "inverted-test-cost",
                "cs231n (inverted): no extra work at test time (vanilla multiplies by 1−p)",
                "ops per eval forward, inverted − none",
                "ops",
                tuple(float(ops["standard"] - ops["none"]) for _ in arms["vanilla"]),
                f"torch ops per eval forward of 40-256-256-10: none {ops['none']}, inverted "
                f"{ops['standard']}, vanilla {ops['vanilla']}",
                within=0.0,
            )
        )
        return out

    return Experiment("arithmetic", train_seeds, claims)
