"""The variant registry is the one list of variants: every room reads it, and one noise function
serves one network and a stack alike."""

from __future__ import annotations

import typing

import pytest
import torch

from models.batched import BATCHABLE_VARIANTS, StackedMLP
from models.config import VARIANTS, ModelConfig, Variant
from models.dropout import DropConnectLinear, noise_module
from models.mlp import build_mlp
from models.variants import KNOBS, REGISTRY, dropout_variant, knob_owner


def _cfg(variant: str, rate: float, **knobs) -> ModelConfig:
    return ModelConfig(
        input_dim=6, num_classes=3, hidden=[5], variant=variant, rates=[rate], **knobs
    )


def test_variant_literal_and_names_follow_the_registry_order():
    names = tuple(v.name for v in REGISTRY)
    assert typing.get_args(Variant) == names == VARIANTS
    assert tuple(v.name for v in REGISTRY if v.stackable) == BATCHABLE_VARIANTS


def test_every_knob_is_a_config_field_with_the_registry_default_and_one_owner():
    fields = list(ModelConfig.model_fields)
    # Knobs follow the network's shape fields, in KNOBS order (stored configs keep that order).
    assert fields[-len(KNOBS) :] == [k.name for k in KNOBS]
    for knob in KNOBS:
        assert ModelConfig.model_fields[knob.name].default == knob.default
        owner = knob_owner(knob.name)
        assert owner is not None and knob in dropout_variant(owner).knobs


def test_spec_bounds_and_dropout_space_come_from_the_registry():
    from studyd.spec import BOUNDS, DropoutSpace

    for knob in KNOBS:
        if not knob.choices:
            assert BOUNDS[knob.name] == (knob.integer, knob.low, knob.high, knob.hint)
        assert knob.name in DropoutSpace.model_fields
    too_high = KNOBS[0].high + 1
    with pytest.raises(ValueError, match=KNOBS[0].hint.split(",")[0]):
        DropoutSpace(**{KNOBS[0].name: too_high})


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(ValueError, match="standard"):
        dropout_variant("spike")


@pytest.mark.parametrize(
    "variant", [v.name for v in REGISTRY if v.stackable and v.acts_on == "activations"]
)
@pytest.mark.parametrize("training", [True, False])
def test_one_network_and_a_stack_apply_the_same_noise_function(variant, training):
    # The same generator state and rate give the same values through the single network's layer
    # (a float rate) and the stack's site (a [K, 1, 1] tensor of rates): one implementation.
    rate, cfg = 0.3, _cfg(variant, 0.3)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    layer = noise_module(variant, rate, cfg.variant_knobs()).train(training)
    torch.manual_seed(11)
    single = layer(x)
    stack = StackedMLP.from_configs([cfg], seeds=[0]).train(training)
    stacked = stack._noise(x.unsqueeze(0), stack.rates[0], torch.Generator().manual_seed(11))[0]
    torch.testing.assert_close(single, stacked, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("training", [True, False])
def test_dropconnect_is_one_function_in_one_network_and_a_stack(training):
    # models/dropconnect.py serves both: from the same stream (a stack of one draws from the
    # generator state its trial's own network starts from) the same masks and the same
    # inference, so the same outputs.
    cfg = _cfg("dropconnect", 0.4, dropconnect_samples=16)
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    net = build_mlp(cfg).train(training)
    assert all(m.samples == 16 for m in net.layers if isinstance(m, DropConnectLinear))
    single = net(x)
    stack = StackedMLP.from_configs([cfg], seeds=[0]).train(training)
    assert stack.noise is None and stack.on_weights
    torch.testing.assert_close(single, stack(x)[0], rtol=1e-5, atol=1e-6)


def test_a_stack_keeps_each_trials_knob_values_per_trial():
    # No stackable variant has knobs today; a stack of Standout configs is not trained, but the
    # per-trial knob buffers are built and sliced the same way for any variant that has them.
    cfgs = [_cfg("standout", 0.0, standout_alpha=a) for a in (0.5, 1.5, 2.5)]
    stack = StackedMLP.from_configs(cfgs, seeds=[0, 1, 2])
    assert stack.knob_standout_alpha.flatten().tolist() == [0.5, 1.5, 2.5]
    stack.keep_trials(torch.tensor([0, 2]))
    assert stack.knob_standout_alpha.flatten().tolist() == [0.5, 2.5]


def test_multisample_form_is_a_named_option_from_the_spec_to_the_config():
    # `dropout.multisample_average` is a name or a list of names (an Optuna categorical), and a
    # trial's ModelConfig carries the one drawn; a wrong name says what to write.
    import optuna

    from studyd.daemon.search import suggest_config
    from studyd.spec import DropoutSpace, load_spec
    from studyd.spec.parameters import search_params

    with pytest.raises(ValueError, match="is not one of losses, activations"):
        DropoutSpace(multisample_average="logits")
    spec = load_spec(
        "name: s\ndropout: {variants: [multisample], multisample_average: [losses, activations]}"
    )
    assert search_params(spec)["multisample_average"].choices == ("losses", "activations")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = set()
    for _ in range(12):
        trial = study.ask()
        model, _ = suggest_config(trial, spec, (64, 10))
        assert model.multisample_average == trial.params["multisample_average"]
        drawn.add(model.multisample_average)
        study.tell(trial, 0.0)
    assert drawn == {"losses", "activations"}
    fixed = load_spec("name: s\ndropout: {variants: [multisample]}")
    assert search_params(fixed)["multisample_average"].fixed_value() == "losses"
    with pytest.raises(ValueError, match="multisample_average"):
        ModelConfig(input_dim=2, num_classes=2, hidden=[2], multisample_average="logits")
