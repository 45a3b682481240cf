"""`python -m bench.seeds --quick --json` end to end on a tiny budget: real data, real training, the
printed JSON's shape and the quick header. It checks the machinery, not the science."""

from __future__ import annotations

import json
import math

import pytest
import torch

import bench.seeds as seeds
from bench.seed_rule import Looks
from bench.seed_runs import train_rescaled
from models.config import ModelConfig, TrainConfig
from models.data import load_dataset
from models.training import train_model

TINY = {
    "looks": Looks((2,)),
    "cs231n_epochs": 2,
    "d2l_epochs": 1,
    "rdrop_epochs": 1,
    "selection_seeds": (1000,),
    "lr_grid": (1e-3, 1e-2),
    "alpha_grid": (1.0,),
}
FIELDS = {"label", "claim", "effect", "ci_low", "ci_high", "verdict", "n_seeds", "sd"}
FIELDS |= {"seeds_needed", "quick", "reproduced"}


def _main(monkeypatch, capsys, *argv: str) -> str:
    monkeypatch.setattr(seeds, "QUICK", TINY)
    threads = torch.get_num_threads()  # main sets the process's torch threads
    try:
        seeds.main(["--quick", *argv])
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


@pytest.mark.slow  # every claim of the quick bench trains: 17-23 s under load
def test_quick_json_is_one_object_per_claim_with_a_unique_label_and_a_marked_verdict(
    monkeypatch, capsys
):
    printed = json.loads(_main(monkeypatch, capsys, "--json"))
    assert isinstance(printed, list) and len(printed) == 23
    labels = [c["label"] for c in printed]
    assert len(set(labels)) == len(labels)
    for claim in printed:
        assert set(claim) >= FIELDS, claim
        assert claim["quick"] is True and claim["n_seeds"] == 2
        assert claim["verdict"] in ("REPRODUCED", "REFUTED", "UNDECIDED")
        assert claim["reproduced"] == (claim["verdict"] == "REPRODUCED")
        assert (claim["seeds_needed"] is None) or claim["verdict"] == "UNDECIDED"
        low, effect, high = claim["ci_low"], claim["effect"], claim["ci_high"]
        assert all(math.isfinite(v) for v in (low, effect, high)), claim
        assert low <= effect <= high, claim
    by_label = {c["label"]: c for c in printed}
    # Two epochs reach no Multi-Sample target: named censored, never a verdict.
    faster = by_label["multisample-activations-faster"]
    assert faster["censored"] == 2 and faster["verdict"] == "UNDECIDED"
    assert {"multisample-losses-val-acc", "multisample-activations-val-acc"} <= set(by_label)
    # Vanilla re-parametrised is inverted dropout: identical predictions, effect exactly 0.
    assert by_label["scaling-matched"]["effect"] == 0.0
    assert "same test predictions 1.000" in by_label["scaling-matched"]["numbers"]


@pytest.mark.slow  # every claim of the quick bench trains: 17-23 s under load
def test_quick_table_says_it_tests_the_machinery_and_marks_every_verdict(monkeypatch, capsys):
    out = _main(monkeypatch, capsys)
    assert out.startswith("QUICK RUN: this checks the machinery")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 24  # header + 23 claims
    assert all(row.rstrip(" |").endswith("(quick)") for row in rows[1:])
    assert "Budget(" not in out and "load average" in out


def test_train_rescaled_at_scale_one_is_train_model():
    # The matched-parametrisation arm's loop must be studyd's training, not a look-alike: same
    # init, data order and masks for a seed give the same weights (seed 3, 3 epochs, digits).
    data = load_dataset("digits", data_dir="data", download=False)
    model = ModelConfig(
        input_dim=data.input_dim, num_classes=data.num_classes, hidden=[32], variant="standard"
    )
    model = model.model_copy(update={"rates": [0.5]})
    train = TrainConfig(epochs=3, batch_size=64, optimizer="adam", lr=1e-3, seed=3)
    ours = train_rescaled(data, model, train, seed=3, head_scale=1.0).model
    theirs = train_model(model, train, data, device="cpu").model
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Adam only"):
        train_rescaled(data, model, train.model_copy(update={"optimizer": "sgd"}), 3, 2.0)


@pytest.mark.parametrize(
    ("argv", "says"),
    [(["--looks", "4,4"], "increasing seed counts"), (["--experiments", "cifar"], "unknown")],
)
def test_a_bad_option_is_one_readable_line_and_exit_2(capsys, argv, says):
    with pytest.raises(SystemExit) as stop:
        seeds.main(argv)
    assert stop.value.code == 2
    assert says in capsys.readouterr().err
