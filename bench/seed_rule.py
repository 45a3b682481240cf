"""bench.seeds' verdict rule: a group-sequential t-interval, Bonferroni-spent over planned looks.

A claim's data are paired effects, one per seed (positive = the claimed direction). The looks
are fixed before the run: after n_1 < n_2 < … < n_L seeds (`Looks.sizes`). At look j the
interval is

    mean_j ± t(1 − α/(2L), n_j − 1) · sd_j / √n_j

Each look's interval misses the true mean with probability ≤ α/L (Student t, paired effects
roughly normal), so by the union bound all L intervals cover it at once with probability
≥ 1 − α: stopping at the first look whose interval decides, or at the last look, keeps the
chance of a false verdict ≤ α however the data fell. That is the simplest α-spending design
(Bonferroni over looks; Jennison & Turnbull 2000, *Group Sequential Methods with Applications to
Clinical Trials*, ch. 2 and 7; spending functions: Lan & DeMets 1983, Biometrika 70:659). A
per-look 95 % interval instead would let repeated looks find a "significant" effect that is
not there (tests/bench/test_seeds_rule.py measures both on synthetic nulls).

Verdicts: a directional claim (bound b) is REPRODUCED when the interval lies above b and REFUTED
when it lies below b; an equivalence claim (margin m) is REPRODUCED when the interval lies within
±m and REFUTED when it lies wholly outside. Anything else at the last look is UNDECIDED, with the
seeds the current mean and sd say the interval would need (`seeds_needed`).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import stats

Decision = Literal["REPRODUCED", "REFUTED", "UNDECIDED"]
# seeds_needed beyond this is reported as None: no affordable number of seeds decides it.
MAX_SEEDS_NEEDED = 10_000


@dataclass(frozen=True)
class Looks:
    """When the rule looks (seeds so far at each look) and its overall error α."""

    sizes: tuple[int, ...]
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not self.sizes or self.sizes[0] < 2 or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"looks {self.sizes}: increasing seed counts, the first ≥ 2")

    @property
    def level(self) -> float:
        """Each look's two-sided confidence level, 1 − α/L."""
        return 1.0 - self.alpha / len(self.sizes)

    def t(self, n: int) -> float:
        return _t_quantile(1.0 - self.alpha / (2 * len(self.sizes)), n - 1)


@functools.lru_cache(maxsize=4096)
def _t_quantile(q: float, df: int) -> float:
    return float(stats.t.ppf(q, df))


@dataclass(frozen=True)
class Interval:
    """One look's estimate: mean paired effect, its interval, sd and seeds."""

    mean: float
    low: float
    high: float
    sd: float
    n: int


def interval(effects: Sequence[float], looks: Looks) -> Interval:
    """The mean ± t(1 − α/(2L), n − 1)·sd/√n interval of `effects`."""
    n = len(effects)
    if n < 2:
        raise ValueError(f"an interval needs at least 2 seeds, got {n}")
    mean, sd = statistics.fmean(effects), statistics.stdev(effects)
    half = looks.t(n) * sd / math.sqrt(n)
    return Interval(float(mean), float(mean - half), float(mean + half), float(sd), n)


def decide(ci: Interval, above: float, within: float | None) -> Decision:
    """The verdict of one look's interval for a directional (`above`) or equivalence claim."""
    if within is not None:
        if -within <= ci.low and ci.high <= within:
            return "REPRODUCED"
        if ci.low > within or ci.high < -within:
            return "REFUTED"
        return "UNDECIDED"
    if ci.low > above:
        return "REPRODUCED"
    if ci.high < above:
        return "REFUTED"
    return "UNDECIDED"


def seeds_needed(ci: Interval, looks: Looks, above: float, within: float | None) -> int | None:
    """Seeds at which an interval at this mean and sd would decide; None if none up to 10 000.

    The distance the half-width must fall below: to the bound (directional), or to the nearer
    edge of ±margin (equivalence).
    """
    distance = abs(within - abs(ci.mean)) if within is not None else abs(ci.mean - above)
    if ci.sd == 0.0:
        return ci.n if distance > 0 else None
    n = max(ci.n, 2)
    while n <= MAX_SEEDS_NEEDED:
        if looks.t(n) * ci.sd / math.sqrt(n) < distance:
            return n
        n = n + 1 if n < 100 else int(n * 1.05)
    return None


@dataclass(frozen=True)
class Sequential:
    """A claim run through the looks: the interval and decision where it stopped."""

    ci: Interval
    decision: Decision
    seeds_needed: int | None


def run_looks(
    effects: Sequence[float], looks: Looks, above: float, within: float | None
) -> Sequential:
    """Stop at the first look that decides; UNDECIDED after the last look the effects reach."""
    reached = [n for n in looks.sizes if n <= len(effects)]
    if not reached:
        raise ValueError(f"{len(effects)} effects reach no look of {looks.sizes}")
    for n in reached:
        ci = interval(effects[:n], looks)
        decision = decide(ci, above, within)
        if decision != "UNDECIDED":
            return Sequential(ci, decision, None)
    return Sequential(ci, "UNDECIDED", seeds_needed(ci, looks, above, within))
