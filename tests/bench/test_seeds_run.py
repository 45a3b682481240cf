"""`python -m bench.seeds --json` end to end on a tiny budget: real data, real training, the
printed JSON's shape. It checks the machinery, not the science (two seeds, one or two epochs)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import bench.seeds as seeds

# Every seed the bench must cover; a claim's text starts with its seed's name.
SEED_NAMES = {"cs231n", "d2l", "gaussian", "multisample", "R-Dropout"}
TINY = {"seeds": 2, "cs231n_epochs": 2, "d2l_epochs": 1, "rdrop_epochs": 1}


@pytest.fixture
def printed_json(monkeypatch, capsys) -> list[dict]:
    monkeypatch.setattr(seeds, "QUICK", TINY)
    threads = torch.get_num_threads()  # main sets the process's torch threads
    try:
        seeds.main(["--quick", "--json"])
    finally:
        torch.set_num_threads(threads)
    return json.loads(capsys.readouterr().out)


def test_json_is_one_object_per_claim_with_its_seed_effect_ci_and_verdict(printed_json):
    assert isinstance(printed_json, list) and len(printed_json) == 18
    named = set()
    for claim in printed_json:
        assert {"claim", "effect", "ci_low", "ci_high", "reproduced"} <= set(claim)
        seed = claim["claim"].split(":")[0].split(" (")[0]
        assert seed in SEED_NAMES, claim["claim"]
        named.add(seed)
        assert isinstance(claim["reproduced"], bool)
        assert claim["n_seeds"] == TINY["seeds"]
        low, effect, high = claim["ci_low"], claim["effect"], claim["ci_high"]
        assert all(math.isfinite(v) for v in (low, effect, high)), claim
        assert low <= effect <= high, claim
        assert claim["rule"].startswith(("CI > ", "CI within ±")), claim
    assert named == SEED_NAMES
