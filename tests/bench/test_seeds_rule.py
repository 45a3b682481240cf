"""bench.seeds' sequential rule (a t-interval per planned look at level 1 − α/L), its error on
synthetic nulls, and the verdict record `--json` prints. Pure numpy/scipy, no training."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest

from bench.seed_claims import Budget, Claim, Experiment, arithmetic
from bench.seed_rule import Looks, decide, interval, run_looks, seeds_needed
from bench.seeds import judge, run_experiment

FULL_LOOKS = Looks((4, 6, 8, 12, 16))


def _claim(effects, **kw) -> Claim:
    return Claim("x-label", "x: a claim", "a − b", "points", tuple(effects), "", **kw)


def test_each_look_is_a_t_interval_at_level_one_minus_alpha_over_the_looks():
    # mean 2, sd √(2/3) = 0.8165, n 4. One look: t(0.975, 3) = 3.18245. Five looks: each at
    # 1 − 0.05/5 = 99 %, t(0.995, 3) = 5.84091.
    one = interval([1.0, 2.0, 3.0, 2.0], Looks((4,)))
    assert one.mean == pytest.approx(2.0)
    assert one.low == pytest.approx(2.0 - 3.18245 * 0.8165 / 2, abs=1e-3)
    five = interval([1.0, 2.0, 3.0, 2.0], FULL_LOOKS)
    assert FULL_LOOKS.level == pytest.approx(0.99)
    assert five.low == pytest.approx(2.0 - 5.84091 * 0.8165 / 2, abs=1e-3)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        interval([1.0], FULL_LOOKS)
    with pytest.raises(ValueError, match="increasing"):
        Looks((4, 4))


def test_verdicts_reproduce_refute_or_leave_undecided():
    looks = Looks((3,))
    ci = interval
    assert decide(ci([0.5, 2.0, -0.2], looks), 0.0, None) == "UNDECIDED"  # reaches 0
    assert decide(ci([99.5, 99.6, 99.7], looks), 99.0, None) == "REPRODUCED"
    assert decide(ci([-3.0, -3.1, -2.9], looks), 0.0, None) == "REFUTED"  # the other side
    assert decide(ci([0.1, -0.2, 0.05], looks), 0.0, 1.0) == "REPRODUCED"
    assert decide(ci([0.1, 1.5, 0.05], looks), 0.0, 1.0) == "UNDECIDED"  # wide: not shown equal
    assert decide(ci([3.0, 3.2, 3.1], looks), 0.0, 1.0) == "REFUTED"  # wholly outside ±1
    assert decide(ci([0.0, 0.0], Looks((2,))), 0.0, 0.0) == "REPRODUCED"


def test_the_rule_stops_at_the_first_look_that_decides():
    effects = [5.0, 5.2, 4.9, 5.1] + [-50.0] * 12  # decided at 4; later seeds are never read
    seq = run_looks(effects, FULL_LOOKS, 0.0, None)
    assert (seq.decision, seq.ci.n, seq.seeds_needed) == ("REPRODUCED", 4, None)
    undecided = run_looks([1.0, -1.0, 2.0, -1.5, 0.5, 0.2], FULL_LOOKS, 0.0, None)
    assert undecided.decision == "UNDECIDED" and undecided.ci.n == 6


def test_seeds_needed_is_the_first_count_whose_half_width_clears_the_bound():
    seq = run_looks([1.0, 3.0, -1.0, 1.0], FULL_LOOKS, 0.0, None)  # mean 1, sd 1.633
    n = seq.seeds_needed
    assert seq.decision == "UNDECIDED" and n is not None
    half = lambda k: FULL_LOOKS.t(k) * seq.ci.sd / math.sqrt(k)  # noqa: E731
    assert half(n) < 1.0 <= half(n - 1)
    at_bound = run_looks([1.0, -1.0, 1.0, -1.0], FULL_LOOKS, 0.0, None)
    assert at_bound.seeds_needed is None  # mean exactly at the bound: no count decides
    # Equivalence: the distance is to the nearer edge of ±margin.
    near = interval([0.5, 0.9, 0.1, 0.5], FULL_LOOKS)
    k = seeds_needed(near, FULL_LOOKS, 0.0, 1.0)
    assert FULL_LOOKS.t(k) * near.sd / math.sqrt(k) < 0.5


def _false_rate(looks: Looks, true_mean: float, above: float, within: float | None) -> float:
    # 3000 synthetic claims whose true effect sits exactly on the boundary (N(true_mean, 1)
    # paired effects, seed 0): any REPRODUCED is a false claim.
    rng = np.random.default_rng(0)
    cap = looks.sizes[-1]
    wins = 0
    for effects in rng.normal(true_mean, 1.0, size=(3000, cap)):
        wins += run_looks(effects.tolist(), looks, above, within).decision == "REPRODUCED"
    return wins / 3000


def test_the_sequential_rule_keeps_false_claims_under_alpha_and_per_look_95_does_not():
    # A false REPRODUCED needs the interval's lower end above the bound at some look: under
    # Bonferroni at most α/2 = 2.5 % (one side). Tolerance: 3 binomial sd at 2.5 % (0.85 %).
    # Looking five times with an ordinary 95 % interval inflates it (the test would fail on
    # that formula): Looks(…, alpha=0.25) is 95 % at each of five looks.
    tol = 3 * math.sqrt(0.025 * 0.975 / 3000)
    assert _false_rate(FULL_LOOKS, 0.0, 0.0, None) <= 0.025 + tol
    naive = Looks(FULL_LOOKS.sizes, alpha=0.25)
    assert _false_rate(naive, 0.0, 0.0, None) > 0.025 + tol
    # Equivalence within ±1 when the truth is exactly at the margin.
    assert _false_rate(FULL_LOOKS, 1.0, 0.0, 1.0) <= 0.025 + tol


def test_a_verdict_has_the_json_fields_and_a_blind_claim_stays_undecided():
    verdict = judge(_claim([1.0, 2.0, 3.0, 2.0]), Looks((4,)), quick=True)
    fields = json.loads(json.dumps(asdict(verdict)))  # what --json prints
    wanted = {"label", "claim", "effect", "ci_low", "ci_high", "verdict", "n_seeds", "sd"}
    assert wanted | {"seeds_needed", "quick", "reproduced"} <= set(fields)
    assert fields["verdict"] == "REPRODUCED" and fields["reproduced"] is True
    assert fields["quick"] is True and fields["seeds_needed"] is None
    blind = judge(_claim([0.0, 0.0, 0.0, 0.0], censored=4, blind=True), Looks((4,)))
    assert (blind.verdict, blind.seeds_needed, blind.censored) == ("UNDECIDED", None, 4)


def test_the_scaling_arithmetic_is_decided_at_the_pilot():
    budget = Budget(Looks((2, 3)), 1, 1, 1, "cpu")
    claims = run_experiment(arithmetic(budget, draws=50), budget.looks)
    verdicts = [judge(c, budget.looks) for c in claims]
    assert [v.verdict for v in verdicts] == ["REPRODUCED"] * 4
    assert all(v.n_seeds == 2 for v in verdicts)  # decided at the first look: no third seed
    cost = verdicts[-1]
    assert cost.effect == 0.0 and "vanilla" in cost.numbers
    none, vanilla = (
        int(cost.numbers.split(word)[1].split(",")[0]) for word in ("none ", "vanilla ")
    )
    assert vanilla == none + 2  # one multiply by 1−p per hidden layer


def test_a_claim_decided_early_reports_the_seeds_its_verdict_used():
    # An in-memory experiment: "clear" decides at the first look (4 seeds), "noisy" holds the
    # experiment to the last (8); the clear claim's numbers and censored count are its 4 seeds'.
    def train(seeds):
        return {
            "clear": [5.0 + 0.1 * (s % 2) for s in seeds],
            "noisy": [(-1.0) ** s for s in seeds],
        }

    def claims(arms):
        return [
            Claim(name, name, "e", "points", tuple(v), f"n={len(v)}", censored=len(v))
            for name, v in arms.items()
        ]

    out = run_experiment(Experiment("fake", train, claims), Looks((4, 8)))
    by_label = {c.label: c for c in out}
    assert len(by_label["clear"].effects) == 4 and by_label["clear"].numbers == "n=4"
    assert judge(by_label["clear"], Looks((4, 8))).censored == 4
    assert len(by_label["noisy"].effects) == 8
