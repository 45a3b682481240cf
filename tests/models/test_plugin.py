"""The example plugin (examples/plugins/studyd-resnet1d), installed by ./scripts/setup: found
through its entry point, built through the sites object bit-identically to the same network
written by hand, and trained by `train_model` like any family."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.config import ModelConfig, TrainConfig
from models.data import load_dataset
from models.dropout import StandardDropout
from models.families import describe_family, installed_families
from models.sites import build_model
from models.training import train_model


def _cfg(**extra: object) -> ModelConfig:
    base = dict(
        input_dim=40,
        num_classes=10,
        hidden=[8, 16],
        family="resnet1d",
        input_shape=[1, 40],
        variant="standard",
        placements=["conv", "last_hidden"],
        rates=[0.3, 0.2],
    )
    return ModelConfig(**(base | extra))


def test_the_installed_plugin_is_a_family_with_its_own_fields_and_sites():
    family = installed_families()["resnet1d"]
    described = describe_family(family)
    assert (described["width"], described["depth"]) == ("channels", "blocks")
    sites = {s["name"]: s["variants"] for s in described["sites"]}
    assert "dropconnect" in sites["last_hidden"] and "dropconnect" not in sites["conv"]


class _Direct(nn.Module):
    """The plugin's network written without the sites object: the same modules, by hand."""

    def __init__(self) -> None:
        super().__init__()
        # The plugin's own block class, from a network it built (tests import no plugin module).
        Block = type(build_model(_cfg()).body.blocks[0])  # noqa: N806
        torch.manual_seed(10)
        self.input_dropout = nn.Identity()
        self.blocks = nn.Sequential(
            Block(1, 8, 5, StandardDropout(0.3)), Block(8, 16, 5, StandardDropout(0.2))
        )
        self.dropout = StandardDropout(0.2)  # last_hidden reads rates[-1]
        self.head = nn.Linear(16 * 10, 10)

    def forward(self, x):
        h = self.blocks(self.input_dropout(x.view(x.shape[0], 1, 40))).flatten(1)
        return self.head(self.dropout(h))


def _trained(net: nn.Module, x, y) -> list[torch.Tensor]:
    torch.manual_seed(11)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(4):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


def test_the_plugin_built_through_sites_trains_bit_identically_to_the_direct_network():
    torch.manual_seed(10)
    built = build_model(_cfg())
    torch.manual_seed(10)
    direct = _Direct()
    x, y = torch.randn(32, 40), torch.randint(0, 10, (32,))
    a, b = _trained(built, x, y), _trained(direct, x, y)
    assert len(a) == len(b) and all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_train_model_trains_the_plugin_on_mnist1d_with_channel_wise_noise():
    data = load_dataset("mnist1d", data_dir=".", train_subset=400)
    cfg = _cfg(hidden=[8], rates=[0.2], conv_form="channel", variant="multisample")
    result = train_model(cfg, TrainConfig(epochs=2, lr=1e-2, batch_size=100), data, device="cpu")
    assert result.final.val_acc > 0.15  # chance is 0.1
