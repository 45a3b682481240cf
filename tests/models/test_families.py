"""Model families: the MLP keeps its configs and hashes; `cnn` is the network its doc draws;
every variant keeps its expectation at every site it accepts; a network built through the sites
object trains bit-identically to the same network written by hand.

Statistical tests: 5 standard errors of the estimator, seeds fixed, as in test_dropout.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from models.config import ModelConfig, TrainConfig
from models.dropout import ChannelNoiseLayer, StandardDropout
from models.families import CNN, FamilyError, Site, describe_family, model_family
from models.sites import FamilyNet, Sites, build_model
from models.variants import VARIANT_NAMES, gaussian_noise, standard_noise, vanilla_noise
from studyd.analysis.canonical import config_key


def _cnn(variant: str = "none", placements=("conv",), **extra) -> ModelConfig:
    base = dict(
        input_dim=64,
        num_classes=3,
        hidden=[4],
        family="cnn",
        input_shape=[1, 8, 8],
        variant=variant,
        placements=list(placements),
    )
    base |= extra
    if variant != "none" and "rates" not in extra:
        base["rates"] = [0.3] * len(base["hidden"])
    return ModelConfig(**base)


# ── the MLP is unchanged ─────────────────────────────────────────────────────────────────────


def test_an_mlp_config_dumps_and_hashes_as_before_families():
    cfg = ModelConfig(
        input_dim=64,
        num_classes=10,
        hidden=[128, 64],
        variant="standard",
        placements=["input", "hidden"],
        rates=[0.3, 0.2],
        input_rate=0.1,
    )
    dumped = cfg.model_dump(mode="json")
    assert not {"family", "arch", "input_shape", "conv_form"} & set(dumped)
    # Computed on main without families: a family default that leaked into the dump changes it.
    assert config_key(cfg, TrainConfig()) == "19586ccf51aca498"
    assert config_key(cfg, TrainConfig(), with_seed=False) == "922b8651e15150ce"
    assert ModelConfig(**dumped) == cfg


def test_a_cnn_config_round_trips_through_its_dump():
    cfg = _cnn("standard", ("conv", "hidden"), arch={"fc": 16}, conv_form="channel")
    dumped = cfg.model_dump(mode="json")
    assert dumped["family"] == "cnn" and dumped["conv_form"] == "channel"
    assert ModelConfig(**dumped) == cfg
    assert config_key(cfg, TrainConfig()) != config_key(
        cfg.model_copy(update={"conv_form": "element"}), TrainConfig()
    )


# ── refusals ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("variant", ["dropconnect", "standout"])
def test_dropconnect_and_standout_at_a_conv_site_are_refused_with_the_reason(variant):
    with pytest.raises(ValidationError, match="apply to fc sites only"):
        _cnn(variant, ("conv",))


def test_an_unknown_family_or_site_is_refused_listing_what_exists():
    with pytest.raises(FamilyError, match="installed: mlp, cnn"):
        model_family("resnet9000")
    with pytest.raises(ValidationError, match="its sites are input, conv, hidden, last_hidden"):
        _cnn("standard", ("convv",))
    with pytest.raises(ValidationError, match="fc"):
        _cnn(arch={"fcc": 3})


def test_families_describe_their_fields_sites_and_the_variants_each_site_accepts():
    described = describe_family(CNN)
    sites = {s["name"]: s["variants"] for s in described["sites"]}
    assert described["width"] == "width" and "fc" in described["fields"]
    assert "dropconnect" not in sites["conv"] and "dropconnect" in sites["hidden"]
    assert sites["hidden"] == list(VARIANT_NAMES)


# ── the cnn is the network its doc draws ─────────────────────────────────────────────────────


def test_one_conv_block_with_an_fc_site_is_the_network_computed_by_hand():
    torch.manual_seed(0)
    cfg = _cnn("standard", ("hidden",), arch={"fc": 5})
    net = build_model(cfg).train()
    conv, fc, head = net.body[1], net.body[6][0], net.body[-1]
    x = torch.randn(7, 64)
    torch.manual_seed(1)
    out = net(x)
    torch.manual_seed(1)
    h = F.max_pool2d(F.relu(F.conv2d(x.view(7, 1, 8, 8), conv.weight, conv.bias, padding=1)), 2)
    h = F.relu(h.flatten(1) @ fc.weight.T + fc.bias)
    mask = (torch.rand(h.shape) >= 0.3).float() / 0.7  # inverted dropout at the hidden site
    assert torch.equal(out, (h * mask) @ head.weight.T + head.bias)


def test_a_one_dimensional_signal_gets_conv1d_blocks_and_pooling_while_it_can():
    cfg = ModelConfig(
        input_dim=40, num_classes=10, hidden=[8, 8, 8], family="cnn", input_shape=[1, 40]
    )
    net = build_model(cfg)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 3
    assert net(torch.randn(2, 40)).shape == (2, 10)
    assert net.body[-1].in_features == 8 * 5  # 40 → 20 → 10 → 5 after three pools


# ── channel-wise noise ───────────────────────────────────────────────────────────────────────

P = 0.3


def test_channel_wise_dropout_drops_whole_maps_at_rate_p_with_the_inverted_scale():
    torch.manual_seed(3)
    layer = ChannelNoiseLayer(standard_noise, P).train()
    out = layer(torch.ones(400, 500, 3, 3))
    per_map = out.flatten(2)
    assert torch.equal(per_map.amin(-1), per_map.amax(-1))  # a map is all kept or all dropped
    assert per_map[..., 0].unique().tolist() == [0.0, pytest.approx(1 / (1 - P))]
    n = per_map.shape[0] * per_map.shape[1]
    dropped = (per_map[..., 0] == 0).float().mean().item()
    assert abs(dropped - P) < 5 * math.sqrt(P * (1 - P) / n)
    assert abs(per_map[..., 0].mean().item() - 1.0) < 5 * math.sqrt(P / (1 - P) / n)


def test_channel_wise_vanilla_and_gaussian_keep_their_own_scaling():
    x = torch.randn(10, 4, 5, 5)
    assert torch.allclose(ChannelNoiseLayer(vanilla_noise, P).eval()(x), x * (1 - P))
    assert torch.equal(ChannelNoiseLayer(gaussian_noise, P).eval()(x), x)
    torch.manual_seed(4)
    eps = ChannelNoiseLayer(gaussian_noise, P).train()(torch.ones(2000, 250, 2, 2)).flatten(2)
    assert torch.equal(eps.amin(-1), eps.amax(-1))
    n, var = eps.shape[0] * eps.shape[1], P / (1 - P)
    assert abs(eps[..., 0].var().item() - var) < 5 * var * math.sqrt(2 / n)


def test_conv_form_channel_puts_channel_noise_at_conv_sites_only():
    cfg = _cnn("standard", ("input", "conv"), conv_form="channel", input_rate=0.2)
    layers = [m for m in build_model(cfg).modules() if isinstance(m, nn.Module)]
    assert sum(isinstance(m, ChannelNoiseLayer) for m in layers) == 1
    assert sum(isinstance(m, StandardDropout) for m in layers) == 1  # the input site


# ── every variant at every site it accepts keeps its expectation ─────────────────────────────

DRAWS = 4000


def _site_module(variant: str, site: Site) -> tuple[nn.Module, torch.Tensor]:
    """The module the sites object puts at `site` for `variant`, and an input for it."""
    extra = {"arch": {"fc": 6}, "dropconnect_samples": 0} if site.kind == "fc" else {}
    cfg = _cnn(variant, (site.name,), input_rate=0.3, **extra)
    sites = Sites(cfg, CNN)
    if site.kind == "fc" and variant == "dropconnect":
        return sites.linear(6, 4, reads=site.name), torch.rand(3, 6) + 0.5
    if site.kind == "fc" and variant == "standout":
        return sites.linear(6, 4, activation=nn.ReLU(), makes=site.name), torch.rand(3, 6)
    shape = (3, 2, 4, 4) if site.kind == "map" else (3, 6)
    return sites.dropout(site.name, layer=0), torch.rand(shape) + 0.5


@pytest.mark.parametrize(
    "variant,site",
    [(v, s) for s in CNN.sites for v in VARIANT_NAMES if s.accepts(v) and v != "none"],
    ids=str,
)
def test_every_variant_keeps_its_eval_output_as_its_training_expectation(variant, site):
    torch.manual_seed(5)
    module, x = _site_module(variant, site)
    with torch.no_grad():
        expected = module.eval()(x)
        module.train()
        draws = torch.stack([module(x) for _ in range(DRAWS)])
    assert not torch.equal(draws[0], draws[1])  # the site is live
    se = draws.std(0) / math.sqrt(DRAWS)
    assert ((draws.mean(0) - expected).abs() <= 5 * se + 1e-6).all()


# ── K masks ──────────────────────────────────────────────────────────────────────────────────


def test_k_masks_share_the_trunk_before_the_first_stochastic_site():
    cfg = _cnn("multisample", ("last_hidden",), hidden=[4, 4], multisample_k=3)
    net = build_model(cfg).train()
    assert isinstance(net, FamilyNet) and net._trunk == len(net.body) - 2
    x = torch.randn(5, 64)
    out = net(x, samples=3)
    assert out.shape == (3, 5, 3) and not torch.equal(out[0], out[1])
    plain = build_model(_cnn(hidden=[4, 4])).eval()
    assert torch.equal(plain(x, samples=2)[1], plain(x))


# ── a network built through the sites object is the network written by hand ─────────────────


class _Direct(nn.Module):
    """The plugin below written by hand: conv1d → relu → dropout → residual add → head."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.drop = StandardDropout(p)
        self.mix = nn.Conv1d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 12, 3)

    def forward(self, x):
        h = self.drop(F.relu(self.conv(x)))
        return self.head((h + self.mix(h)).flatten(1))


class _ViaSites(nn.Module):
    def __init__(self, sites: Sites) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.drop = sites.dropout("conv", layer=0)
        self.mix = nn.Conv1d(4, 4, 3, padding=1)
        self.head = sites.linear(4 * 12, 3, reads="last_hidden")

    def forward(self, x):
        h = self.drop(F.relu(self.conv(x)))
        return self.head((h + self.mix(h)).flatten(1))


def _train(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    torch.manual_seed(7)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(20):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


def test_a_plugin_network_built_through_sites_trains_bit_identically_to_the_direct_one():
    cfg = ModelConfig(
        input_dim=12,
        num_classes=3,
        hidden=[4],
        family="cnn",
        input_shape=[1, 12],
        variant="standard",
        placements=["conv"],
        rates=[0.4],
    )
    torch.manual_seed(6)
    direct = _Direct(0.4)
    torch.manual_seed(6)
    body = _ViaSites(Sites(cfg, CNN))
    built = FamilyNet(body, (1, 12), 3)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    trained_direct = _train(direct, x.view(32, 1, 12), y)
    trained_built = _train(built, x, y)
    assert all(torch.equal(a, b) for a, b in zip(trained_direct, trained_built, strict=True))
    # K masks on a body that is not a Sequential: the whole batch is repeated K times.
    assert built(x, samples=2).shape == (2, 32, 3)


def test_train_model_trains_a_cnn_on_image_shaped_digits():
    from models.data import load_dataset
    from models.training import train_model

    data = load_dataset("digits", data_dir=".", train_subset=200)
    cfg = ModelConfig(
        input_dim=data.input_dim,
        num_classes=data.num_classes,
        hidden=[8],
        family="cnn",
        input_shape=list(data.example_shape),
        variant="rdrop",
        placements=["conv", "last_hidden"],
        rates=[0.2],
        conv_form="channel",
    )
    result = train_model(cfg, TrainConfig(epochs=3, batch_size=32, lr=1e-2), data, device="cpu")
    assert len(result.history) == 3
    assert result.final.val_acc > 0.5  # chance is 0.1
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_only_the_mlp_family_stacks_trials():
    from models.batched import batch_key

    assert batch_key(_cnn("standard"), TrainConfig()) is None
    assert model_family("cnn").stackable is False and model_family("mlp").stackable is True


@pytest.mark.parametrize(
    "shape,expected",
    [((5, 6), (1, 5, 6)), ((3, 4, 4), (3, 4, 4)), ((12,), (1, 12))],
    ids=["N,H,W", "N,C,H,W", "N,L"],
)
def test_npz_examples_keep_their_shape_channels_first_while_x_stays_flat(tmp_path, shape, expected):
    import numpy as np

    from models.data import load_dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, *shape)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(60) % 3)
    data = load_dataset("npz:d.npz", data_dir=tmp_path)
    assert data.example_shape == expected
    assert data.x_train.shape[1] == math.prod(shape)


def test_mc_dropout_diagnostics_sample_channel_wise_noise_in_a_family_network():
    from models.diagnostics import _mc_logits, dropout_sampling

    net = build_model(_cnn("standard", ("conv",), conv_form="channel"))
    x = torch.randn(6, 64)
    with dropout_sampling(net) as n:
        assert n == 1
        passes = torch.cat(list(_mc_logits(net, x, passes=4, batch_size=64)))
    assert passes.shape == (4, 6, 3) and not torch.equal(passes[0], passes[1])


def test_a_saved_cnn_rebuilds_with_the_same_outputs():
    import io

    from models.saved import load_saved, model_bytes

    cfg = _cnn("standard", ("conv",), arch={"fc": 8}, conv_form="channel")
    net = build_model(cfg).eval()
    blob = model_bytes(net, cfg, TrainConfig())
    again = load_saved(io.BytesIO(blob))
    x = torch.randn(4, 64)
    assert again.model_config == cfg and torch.equal(again.net(x), net(x))
