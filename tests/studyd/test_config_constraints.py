"""Constraints the configuration decides (param_count) are decided before training."""

from __future__ import annotations

import optuna
from optuna.samplers._tpe.sampler import _split_trials
from optuna.trial import TrialState

from models.config import ModelConfig
from models.mlp import build_mlp, count_parameters
from studyd.daemon.config_constraints import (
    INFEASIBLE_ATTR,
    INFEASIBLE_IN_A_ROW,
    config_param_count,
    infeasible_search_end,
    untrained_infeasible,
)
from studyd.spec import load_spec


def _spec(constraints: str) -> object:
    return load_spec(
        "name: c\ndataset: {name: digits}\ntraining: {epochs: 2}\n"
        f"search: {{constraints: {constraints}}}"
    )


def _net(width: int, variant: str = "dropconnect") -> ModelConfig:
    return ModelConfig(
        input_dim=30,
        num_classes=2,
        hidden=[width, width],
        variant=variant,
        placements=["hidden"],
        rates=[0.3, 0.3],
    )


def test_the_issue_s_dropconnect_net_is_infeasible_untrained():
    found = untrained_infeasible(_spec("['param_count <= 20000']"), _net(191))
    assert found is not None
    assert found.values == {"param_count": 42977.0}
    assert found.violations == {"param_count <= 20000": 22977.0}
    assert found.attrs()[INFEASIBLE_ATTR] == "42,977 parameters; param_count <= 20000"


def test_a_net_inside_the_bound_and_a_spec_without_one_train():
    assert untrained_infeasible(_spec("['param_count <= 20000']"), _net(64)) is None
    assert untrained_infeasible(_spec("[]"), _net(191)) is None
    # A bound that needs training (gap) is decided after training, as before.
    assert untrained_infeasible(_spec("['gap <= 0.01']"), _net(191)) is None


def test_the_count_from_the_config_is_the_trained_network_s():
    for variant in ("none", "standard", "dropconnect"):
        cfg = (
            _net(100, variant)
            if variant != "none"
            else ModelConfig(input_dim=30, num_classes=2, hidden=[100, 100], variant="none")
        )
        assert config_param_count(cfg) == count_parameters(build_mlp(cfg))


def test_tpe_counts_a_pruned_untrained_trial_with_a_violation_as_infeasible():
    study = optuna.create_study(direction="maximize")
    dist = {"width": optuna.distributions.IntDistribution(16, 256)}
    study.add_trial(optuna.trial.create_trial(params={"width": 32}, distributions=dist, value=0.9))
    untrained = study.ask(dist)
    untrained.set_constraint("param_count <= 20000", 22977.0)
    study.tell(untrained, state=TrialState.PRUNED)
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    below, above = _split_trials(study, trials, n_below=1)
    # The trained trial is the good one; the untrained infeasible one is ranked with the bad.
    assert [t.number for t in below] == [0]
    assert [t.number for t in above] == [1]


def test_a_search_that_keeps_proposing_infeasible_configs_ends_with_a_reason():
    assert infeasible_search_end(INFEASIBLE_IN_A_ROW - 1, "x") is None
    why = infeasible_search_end(INFEASIBLE_IN_A_ROW, "42,977 parameters; param_count <= 20000")
    assert why is not None
    assert "20 configurations in a row" in why and "param_count <= 20000" in why


def test_an_infeasible_trial_is_marked_where_the_dashboard_table_shows_it():
    from studyd.daemon.records import infeasible_mark

    marked = infeasible_mark({"param_count <= 20000": 22977.0, "gap <= 0.1": -0.02})
    assert marked == {"infeasible": "param_count <= 20000 (over by 22977)"}
    assert infeasible_mark({"gap <= 0.1": float("inf")}) == {
        "infeasible": "gap <= 0.1 (not measured)"
    }
    assert infeasible_mark({"gap <= 0.1": 0.0}) == {}
