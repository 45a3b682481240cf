"""Every requested variant gets a status line, whatever became of its trials."""

from __future__ import annotations

from typing import Any

from studyd.analysis.coverage import variant_coverage

REQUESTED = ["none", "standard", "gaussian", "dropconnect", "rdrop"]


def _trial(variant: str, state: str = "complete", **extra: Any) -> dict[str, Any]:
    attrs = {"variant": variant} | extra.pop("attrs", {})
    return {"state": state, "user_attrs": attrs, **extra}


def _statuses(trials: list[dict[str, Any]]) -> dict[str, str]:
    return {c.variant: c.status for c in variant_coverage(REQUESTED, trials)}


def test_the_issue_s_study_lists_all_five_variants():
    over = {"param_count <= 20000": 22977.0}
    trials = [
        _trial("none"),
        _trial("none", attrs={"reused_from": 0}),
        _trial("standard"),
        _trial("standard", "pruned", epochs=1),
        _trial("gaussian", "pruned", epochs=2),
        _trial("dropconnect", constraints=over),
    ]
    assert _statuses(trials) == {
        "none": "none: 1 trained run",
        "standard": "standard: 1 trained run (1 pruned at epoch 1)",
        "gaussian": "gaussian: 0 trained runs (1 pruned at epoch 2)",
        "dropconnect": "dropconnect: no feasible configuration (1 over param_count)",
        "rdrop": "rdrop: not tried",
    }


def test_an_untrained_infeasible_proposal_is_no_trained_run():
    over = {"param_count <= 20000": 5.0}
    trials = [
        _trial("dropconnect", "pruned", constraints=over, attrs={"infeasible_untrained": "x"}),
        _trial("dropconnect", "pruned", constraints=over, attrs={"infeasible_untrained": "x"}),
    ]
    assert _statuses(trials)["dropconnect"] == (
        "dropconnect: no feasible configuration (2 over param_count)"
    )


def test_pruned_failed_and_pending_trials_are_each_named():
    trials = [
        _trial("rdrop", "pruned", epochs=3),
        _trial("rdrop", "pruned", epochs=10),
        _trial("rdrop", "fail"),
        _trial("rdrop", "running"),
        _trial("rdrop", "complete", constraints={"gap >= 0.5": -0.1}),
    ]
    assert _statuses(trials)["rdrop"] == (
        "rdrop: 1 trained run (2 pruned at epochs 3–10, 1 failed, 1 pending)"
    )


def test_a_variant_not_requested_but_trained_is_listed_after_the_requested():
    found = variant_coverage(["none"], [_trial("standard"), _trial("none")])
    assert [c.variant for c in found] == ["none", "standard"]
    assert found[1].as_dict() == {
        "variant": "standard",
        "trained": 1,
        "pruned": 0,
        "infeasible": 0,
        "failed": 0,
        "pending": 0,
        "status": "standard: 1 trained run",
    }
