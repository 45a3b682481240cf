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


def test_the_report_page_leaves_out_timings_a_one_parameter_importance_and_others_knobs(
    tmp_path,
):
    from studyd.client.report import render_report

    summary = {
        "verdict": "v",
        "diagnostics": [{"variant": "rdrop", "n": 3, "gap": 0.03, "ms_per_1k": 129.0}],
        "importances": {"variant": 1.0},
        "best_config": {"hidden": [64], "variant": "rdrop", "rdrop_alpha": 1.0, "multisample_k": 4},
        "requested_variants": [{"variant": "rdrop", "status": "rdrop: 3 trained runs"}],
    }
    files = render_report({"id": 1, "name": "r"}, summary, [], [], tmp_path)
    page = files.index.read_text()
    assert "ms_per_1k" not in page and "129" not in page
    assert "<h3>importances</h3>" not in page
    assert "rdrop_alpha" in page and "multisample_k" not in page
    assert "rdrop: 3 trained runs" in page
