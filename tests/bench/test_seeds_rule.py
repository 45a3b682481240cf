"""bench.seeds' verdict rule (paired t-CI over seeds) and its arithmetic claims, which are cheap."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from bench.seed_claims import Budget, Claim, scaling
from bench.seeds import judge


def _claim(effects, **kw) -> Claim:
    return Claim("cs231n: x", "a − b", "points", tuple(effects), "", **kw)


def test_the_ci_is_students_t_over_seeds_and_names_the_json_fields():
    # mean 2, sd √(2/3) = 0.8165, n 4: half-width t(0.975, 3)·sd/√4, t(0.975, 3) = 3.18245.
    verdict = judge(_claim([1.0, 2.0, 3.0, 2.0]))
    assert verdict.effect == pytest.approx(2.0)
    assert verdict.ci_low == pytest.approx(2.0 - 3.18245 * 0.8165 / 2, abs=1e-3)
    fields = json.loads(json.dumps(asdict(verdict)))  # what --json prints
    assert {"claim", "effect", "ci_low", "ci_high", "reproduced"} <= set(fields)
    assert fields["reproduced"] is True and fields["claim"].startswith("cs231n: ")


def test_a_directional_claim_fails_when_its_ci_reaches_the_bound():
    assert not judge(_claim([0.5, 2.0, -0.2])).reproduced  # mean > 0, CI crosses 0
    assert judge(_claim([99.5, 99.6, 99.7], above=99.0)).reproduced
    assert not judge(_claim([99.5, 99.6, 99.7], above=99.6)).reproduced


def test_an_equivalence_claim_needs_the_whole_ci_inside_the_margin():
    assert judge(_claim([0.1, -0.2, 0.05], within=1.0)).reproduced
    assert not judge(_claim([0.1, 1.5, 0.05], within=1.0)).reproduced  # wide CI: not shown equal
    assert judge(_claim([0.0, 0.0], within=0.0)).reproduced
    with pytest.raises(ValueError, match="at least 2 seeds"):
        judge(_claim([1.0]))


def test_the_scaling_rules_keep_the_expectation_and_inverted_adds_no_test_op():
    verdicts = [judge(c) for c in scaling(Budget((0, 1), 1, 1, 1, "cpu"), draws=50)]
    assert [v.reproduced for v in verdicts] == [True] * 4
    cost = verdicts[-1]
    assert cost.effect == 0.0 and "vanilla" in cost.numbers
    none, vanilla = (
        int(cost.numbers.split(word)[1].split(",")[0]) for word in ("none ", "vanilla ")
    )
    assert vanilla == none + 2  # one multiply by 1−p per hidden layer
