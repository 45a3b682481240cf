"""plan_more_seeds: which comparisons the confidence sequence leaves undecided, who gets a seed."""

from __future__ import annotations

import numpy as np

from studyd.analysis.auto_repeats import plan_more_seeds, undecided_sentence


def _records(means: dict[str, float], seeds: int, sd: float, rng) -> list[dict]:
    """Per variant: a search trial at its mean, then replicates on seeds 1..`seeds`."""
    out = []
    for variant, mean in means.items():
        base = {"variant": variant, "placement": "hidden", "config_key": f"{variant}-c"}
        out.append(base | {"seed": 0, "value": mean, "replicate": False})
        shared = rng.normal(0, 0.01, seeds + 1)  # a seed's effect on every config
        out += [
            base | {"seed": s, "value": mean + shared[s] + rng.normal(0, sd), "replicate": True}
            for s in range(1, seeds + 1)
        ]
    return out


def test_a_clear_difference_is_decided_and_nothing_more_is_asked():
    rng = np.random.default_rng(0)
    plan = plan_more_seeds(_records({"standard": 0.95, "none": 0.90}, 8, 0.003, rng))
    [cmp] = plan.comparisons
    assert (plan.leader, cmp.rival, cmp.decision.state) == ("standard", "none", "better")
    assert plan.done and plan.configs == [] and undecided_sentence(plan) is None


def test_an_undecided_rival_and_the_leader_each_get_the_next_seed():
    rng = np.random.default_rng(1)
    records = _records({"standard": 0.951, "gaussian": 0.95, "none": 0.80}, 6, 0.01, rng)
    plan = plan_more_seeds(records, max_seeds=20)
    states = {c.rival: c.decision.state for c in plan.comparisons}
    assert states == {"gaussian": "undecided", "none": "better"}
    assert plan.configs == ["standard-c", "gaussian-c"] and plan.next_seed == 7
    sentence = undecided_sentence(plan)
    assert sentence.startswith("Undecided — standard vs gaussian (6 seeds, ")
    assert "more seeds" in sentence
    # A margin wider than the sequence rules the small difference out: decided as equivalent.
    interval = plan.comparisons[0].decision.interval
    wide = max(-interval.low, interval.high) + 0.001
    assert plan_more_seeds(records, margin=wide).comparisons[0].decision.state == "equivalent"
    assert plan_more_seeds(records, margin=wide - 0.002).comparisons[0].decision.state != (
        "equivalent"
    )


def test_the_cap_ends_the_rounds_even_when_undecided():
    rng = np.random.default_rng(1)
    records = _records({"standard": 0.951, "gaussian": 0.95}, 6, 0.01, rng)
    plan = plan_more_seeds(records, max_seeds=6)
    assert plan.done and plan.comparisons[0].decision.state == "undecided"
