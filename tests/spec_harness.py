"""Study specs for the tests: one small valid spec, and the same narrowed to train in seconds."""

from __future__ import annotations

import uuid
from typing import Any


def spec(
    name: str | None = None,
    *,
    dataset: str = "digits",
    variants: list[str] | None = None,
    placements: list[str] | None = ["hidden"],  # noqa: B006 - never mutated; None: the default
    epochs: int = 2,
    **search: Any,
) -> dict[str, Any]:
    """A small valid spec (12 trials of 2 epochs on digits); `search` fields go on top."""
    dropout: dict[str, Any] = {"variants": variants or ["standard", "gaussian"]}
    if placements is not None:
        dropout["placements"] = placements
    return {
        "name": name or f"api-{uuid.uuid4().hex[:8]}",
        "dataset": dataset,
        "dropout": dropout,
        "training": {"epochs": epochs},
        "search": {"n_trials": 12, **search},
    }


def trainable_spec(
    name: str, n_trials: int, *, variants: list[str], width: int, epochs: int = 2
) -> dict[str, Any]:
    """`spec` for a worker to train: 150 examples and a fixed width (trials of about a second at
    2 epochs), random sampling, no pruning."""
    body = spec(name, variants=variants, epochs=epochs, n_trials=n_trials)
    body["dataset"] = {"name": "digits", "train_subset": 150}
    body["model"] = {"depth": 1, "width": width}
    body["training"]["batch_size"] = 64
    body["search"] |= {"sampler": "random", "pruner": "none"}
    return body


# Three distinct runs: `none`; standard p = 0.3 and p = 0.5, where `pre_activation` under ReLU
# is the same network as `hidden` (studyd.analysis.canonical) and p = 0 is `none`.
THREE_RUNS = """
name: three-runs
dataset: digits
model: {depth: 1, width: 8}
dropout:
  variants: [none, standard]
  placements: [hidden, pre_activation]
  rate: {choices: [0.0, 0.3, 0.5]}
training: {epochs: 2, lr: 0.01}
search: {n_trials: 12, sampler: random, pruner: none, seed: 1}
"""
