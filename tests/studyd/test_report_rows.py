"""The report compares variants: each variant's best curve, each config with its own knobs."""

from __future__ import annotations

from studyd.client.report import best_of_each_variant
from studyd.client.summary_rows import own_config


def _run(number: int, variant: str, value: float) -> dict:
    return {"number": number, "value": value, "user_attrs": {"variant": variant}}


def test_curves_show_the_best_trial_of_each_variant_not_the_five_best():
    runs = [_run(n, "standard", 0.99 - n / 100) for n in range(6)]
    runs += [_run(6, "none", 0.9), _run(7, "none", 0.95), _run(8, "gaussian", 0.99)]
    best = best_of_each_variant(runs, maximize=True)
    # A tie at .99 goes to the earlier trial, as the study's best trial does.
    assert [(t["number"], t["user_attrs"]["variant"]) for t in best] == [
        (0, "standard"), (8, "gaussian"), (7, "none")
    ]  # fmt: skip


def test_a_config_shows_its_own_variant_s_knobs_only():
    config = {
        "input_dim": 30,
        "hidden": [64],
        "variant": "rdrop",
        "placements": ["hidden"],
        "rates": [0.3],
        "input_rate": 0.2,
        "rdrop_alpha": 1.0,
        "multisample_k": 4,
        "standout_alpha": 1.0,
    }
    assert own_config(config) == {
        "hidden": [64], "variant": "rdrop", "placements": ["hidden"], "rates": [0.3],
        "rdrop_alpha": 1.0,
    }  # fmt: skip
    none = own_config({"hidden": [64], "variant": "none", "rates": [0.0], "multisample_k": 4})
    assert none == {"hidden": [64], "variant": "none"}
