"""Anytime-valid confidence sequences for a paired mean difference: add seeds until decided.

A fixed-n t-interval looked at after every new seed, stopping when it excludes 0, claims a
difference that is not there far more often than α (an "optional stopping" error: 26% of null
paths over 3–30 seeds, see tests/studyd/test_anytime.py). A confidence sequence holds at every
n at once — P(∃ n: μ ∉ CS_n) ≤ α — so seeds may be added until it decides, for any reason.

The sequence here is the Gaussian one with unknown variance (Lai 1976, "On confidence
sequences", Ann. Statist. 4(2)): for paired differences d₁…dₙ ~ N(μ, σ²) and a candidate μ,
with t the one-sample t statistic of d − μ and ν = n − 1, the Bayes factor with the effect size
δ = μ/σ ~ N(0, g) and the right-Haar prior on σ (Rouder et al. 2009's t-test Bayes factor)

    E_n(μ) = (1 + n·g)^(−1/2) · [(1 + t²/ν) / (1 + t²/((1 + n·g)·ν))]^(n/2)

is a nonnegative martingale under μ in the filtration of the scale-invariant data, an e-process
(Pérez-Ortiz, Lardy, de Heide and Grünwald 2024, "E-statistics, group invariance and anytime-
valid testing", Ann. Statist. 52(4)). By Ville's inequality P(∃ n: E_n(μ) ≥ 1/α) ≤ α, so
CS_n = {μ : E_n(μ) < 1/α} covers μ at every n at once. E_n grows with t², so CS_n is
x̄ ± T·s/√n where T² solves E_n = 1/α in closed form (`t_boundary`). `g` sets where it is
tightest: g = 1 (a unit-information prior) suits effects of about one paired sd.

Assumes the paired differences are roughly normal (accuracies over seeds are; rounding to a
validation set's 1/n_val steps is checked by the tests and by bench/verdict_null.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_G = 1.0
# Seeds to look ahead for "about how many more would decide it".
LOOKAHEAD = 500


@dataclass(frozen=True)
class Interval:
    """CS_n for the mean difference: `low`/`high` are ±inf while it cannot exclude anything."""

    n: int
    mean: float | None
    sd: float | None
    low: float
    high: float


@dataclass(frozen=True)
class Decision:
    """better / worse: the CS excludes 0; equivalent: it lies inside ±margin; else undecided.

    `more_seeds`: about how many more seeds would decide it if the mean and sd stayed as they
    are (None when they would not within LOOKAHEAD, or nothing can be projected yet)."""

    state: str
    interval: Interval
    more_seeds: int | None


def t_boundary(n: int, alpha: float, g: float) -> float | None:
    """T with E_n(μ) = 1/α at t² = T² (None: E_n stays below 1/α however large t is).

    With a = 1 + n·g and L = (√a/α)^(2/n), E_n = 1/α ⇔ (1 + u/ν)/(1 + u/(aν)) = L, so
    u = ν(L − 1)/(1 − L/a), which exists when L < a (i.e. a^((n−1)/2) > 1/α).
    """
    if n < 2:
        return None
    nu, a = n - 1, 1.0 + n * g
    log_l = (2.0 / n) * (0.5 * math.log(a) - math.log(alpha))
    if log_l >= math.log(a):
        return None
    big_l = math.exp(log_l)
    return math.sqrt(nu * (big_l - 1.0) / (1.0 - big_l / a))


def log_e_value(diffs: Sequence[float], mu: float = 0.0, g: float = DEFAULT_G) -> float:
    """log E_n(μ): the evidence against "the mean difference is μ" after these seeds."""
    n = len(diffs)
    if n < 2:
        return 0.0
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    if var == 0.0:
        return 0.0 if mean == mu else math.inf
    nu, a = n - 1, 1.0 + n * g
    t2 = (mean - mu) ** 2 / (var / n)
    return -0.5 * math.log(a) + (n / 2) * (math.log1p(t2 / nu) - math.log1p(t2 / (a * nu)))


def confidence_sequence(
    diffs: Sequence[float], alpha: float = 0.05, g: float = DEFAULT_G
) -> Interval:
    """CS_n for the mean of `diffs` at level 1 − α, valid at every n at once."""
    n = len(diffs)
    if n == 0:
        return Interval(0, None, None, -math.inf, math.inf)
    mean = math.fsum(diffs) / n
    if n < 2:
        return Interval(n, mean, None, -math.inf, math.inf)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    return _interval(n, mean, sd, alpha, g)


def _interval(n: int, mean: float, sd: float, alpha: float, g: float) -> Interval:
    boundary = t_boundary(n, alpha, g)
    # Identical differences carry no error estimate: nothing is decided on them.
    if boundary is None or sd == 0.0:
        return Interval(n, mean, sd, -math.inf, math.inf)
    half = boundary * sd / math.sqrt(n)
    return Interval(n, mean, sd, mean - half, mean + half)


def _state(interval: Interval, margin: float) -> str:
    if interval.low > 0:
        return "better"
    if interval.high < 0:
        return "worse"
    if margin > 0 and -margin < interval.low and interval.high < margin:
        return "equivalent"
    return "undecided"


def decide(
    diffs: Sequence[float], margin: float = 0.0, alpha: float = 0.05, g: float = DEFAULT_G
) -> Decision:
    """Where the leader − rival differences stand: shown, ruled out within ±margin, or neither."""
    interval = confidence_sequence(diffs, alpha, g)
    state = _state(interval, margin)
    more = None
    if state == "undecided" and interval.sd is not None and interval.sd > 0:
        more = seeds_to_decide(interval.n, interval.mean, interval.sd, margin, alpha, g)
    return Decision(state, interval, more)


def seeds_to_decide(
    n: int, mean: float, sd: float, margin: float, alpha: float = 0.05, g: float = DEFAULT_G
) -> int | None:
    """More seeds until CS would decide, were the mean and sd to stay (a projection, no promise)."""
    for extra in range(1, LOOKAHEAD + 1):
        if _state(_interval(n + extra, mean, sd, alpha, g), margin) != "undecided":
            return extra
    return None
