"""`model.family` in the spec: each family's own fields in the searchable forms, refusals that
list what exists, and the spec → Optuna → ModelConfig path for a family other than the MLP."""

from __future__ import annotations

import optuna
import pytest

from models.config import ModelConfig
from models.data import load_dataset
from studyd.analysis.canonical import canonicalize_model, config_key
from studyd.daemon.runs import distinct_runs, trial_config
from studyd.daemon.search import architecture_count, stack_count
from studyd.spec import SpecError, validate_spec
from studyd.spec.parameters import search_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _spec(model: dict | None = None, dropout: dict | None = None, **rest) -> dict:
    body = {"name": "fam", "dataset": "digits", **rest}
    if model is not None:
        body["model"] = model
    if dropout is not None:
        body["dropout"] = dropout
    return body


def _refused(body: dict) -> str:
    with pytest.raises(SpecError) as caught:
        validate_spec(body)
    return str(caught.value)


def test_a_spec_without_family_dumps_as_before_and_is_the_mlp():
    spec = validate_spec(_spec())
    dumped = spec.model_dump(mode="json")
    assert "family" not in dumped["model"] and "conv_form" not in dumped["dropout"]
    assert spec.model.family == "mlp"
    assert validate_spec(_spec({"family": "mlp", "depth": 2})).model_dump(mode="json") == dumped


def test_cnn_fields_take_scalars_ranges_and_choices_and_round_trip():
    spec = validate_spec(
        _spec(
            {"family": "cnn", "width": [8, 64], "depth": {"choices": [1, 2]}, "fc": [0, 32, 64]},
            {"variants": ["standard"], "placements": ["conv"], "conv_form": ["element", "channel"]},
        )
    )
    params = search_params(spec)
    assert params["width"].log and params["width"].integer
    assert params["depth"].dim.kind == "choice" and params["fc"].dim.choices == [0, 32, 64]
    assert params["kernel"].fixed and params["conv_form"].choices == ("element", "channel")
    assert validate_spec(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize(
    "model,dropout,needle",
    [
        ({"family": "resnet9000"}, None, "installed: mlp, cnn"),
        ({"family": "cnn", "channels": 8}, None, "its fields are family, log, per_layer_widths"),
        ({"family": "cnn", "kernel": [1, 40]}, None, "model.kernel: 40"),
        ({"family": "cnn", "pool": ["max", "min"]}, None, "'min' is not one of max, avg"),
        ({"family": "cnn", "width": [8, 100000]}, None, "outside 1..8192"),
        ({"family": "cnn"}, {"placements": ["pre_activation"]}, "its sites are input, conv"),
        (None, {"placements": ["conv"]}, "not a site of the mlp family"),
        (None, {"conv_form": "channel"}, "the mlp has no feature-map sites"),
    ],
)
def test_unknown_families_fields_and_sites_are_refused_listing_what_exists(model, dropout, needle):
    assert needle in _refused(_spec(model, dropout))


@pytest.mark.parametrize("variant", ["dropconnect", "standout"])
def test_dropconnect_and_standout_at_conv_are_refused_saying_why(variant):
    message = _refused(
        _spec({"family": "cnn"}, {"variants": ["standard", variant], "placements": ["conv"]})
    )
    assert f"{variant} cannot act at cnn's 'conv' site" in message
    assert "fc sites only" in message
    validate_spec(_spec({"family": "cnn"}, {"variants": [variant], "placements": ["hidden"]}))


def test_a_cnn_trial_gets_its_family_arch_and_the_data_image_shape():
    data = load_dataset("digits", data_dir=".")
    spec = validate_spec(
        _spec(
            {"family": "cnn", "width": [4, 16], "depth": [1, 2], "fc": {"choices": [0, 16]}},
            {"variants": ["none", "gaussian"], "placements": ["conv", "conv+last_hidden"]},
        )
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        model, _ = trial_config(trial, spec, data)
        assert model.family == "cnn" and model.input_shape == [1, 8, 8]
        assert model.arch["fc"] in (0, 16) and 4 <= model.hidden[0] <= 16
        seen.add(model.variant)
        study.tell(trial, 0.5)
    assert seen == {"none", "gaussian"}


def test_non_mlp_families_train_one_trial_at_a_time_under_auto():
    spec = validate_spec(_spec({"family": "cnn"}, {"variants": ["none", "standard"]}))
    assert stack_count(spec) == architecture_count(spec) == float("inf")


def test_a_grid_over_cnn_fields_counts_its_distinct_runs():
    spec = validate_spec(
        _spec(
            {"family": "cnn", "width": [8, 16], "depth": 1, "fc": {"choices": [0, 16]}},
            {"variants": ["none", "standard"], "placements": ["conv"], "rate": [0.1, 0.3, 0.5]},
            training={"lr": 1e-3},
            search={"sampler": "grid", "n_trials": 20},
        )
    )
    # 9 widths × 2 fc: `none` once each, `standard` at 3 rates each.
    assert distinct_runs(spec, (64, 10)) == 9 * 2 * (1 + 3)


def test_canonical_cnn_configs_drop_dead_sites_and_forms():
    base = dict(input_dim=64, num_classes=10, hidden=[8], family="cnn", input_shape=[1, 8, 8])
    zero = ModelConfig(**base, variant="standard", placements=["conv"], rates=[0.0])
    assert canonicalize_model(zero) == canonicalize_model(ModelConfig(**base, placements=[]))
    fc_only = ModelConfig(
        **base, variant="standard", placements=["hidden"], rates=[0.3], conv_form="channel"
    )
    assert canonicalize_model(fc_only).conv_form == "element"
    on_maps = fc_only.model_copy(update={"placements": ["conv"]})
    assert config_key(on_maps, _train()) != config_key(
        on_maps.model_copy(update={"conv_form": "element"}), _train()
    )


def _train():
    from models.config import TrainConfig

    return TrainConfig()


def test_missing_family_names_a_family_this_process_lacks_and_nothing_else():
    from studyd.spec.family_space import missing_family

    assert missing_family({"name": "s", "model": {"family": "resnet9000"}}) == "resnet9000"
    assert missing_family({"name": "s", "model": {"family": "cnn"}}) is None
    assert missing_family({"name": "s"}) is None and missing_family({"model": None}) is None
