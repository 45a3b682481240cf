"""Studies whose variants were searched and replicated, written the worker's way (for the
compare and extend tests): per variant one search trial and seed replicates around a mean."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial
from spec_harness import spec as base_spec


def _trial(variant: str, variants: list[str], value: float, seed: int, replicate: bool):
    attrs = {
        "variant": variant,
        "placement": "none" if variant == "none" else "hidden",
        "config_key": f"{variant}-chosen",
        "train": {"seed": seed, "epochs": 2},
        "config": {"hidden": [32], "variant": variant, "rates": [0.3]},
        "val_acc": value,
    }
    if replicate:
        attrs["replicate_of"] = 0
    return optuna.trial.create_trial(
        params={"variant": variant, "rate": 0.3},
        distributions={
            "variant": CategoricalDistribution(variants),
            "rate": FloatDistribution(0.0, 0.9),
        },
        value=value,
        user_attrs=attrs,
    )


def replicated_trials(means: dict[str, float], seeds: int = 3) -> list[FrozenTrial]:
    """Per variant a search trial at its mean, then `seeds` replicates at mean ± 0.001·k."""
    variants = list(means)
    trials = []
    for variant, mean in means.items():
        trials.append(_trial(variant, variants, mean, seed=0, replicate=False))
        trials += [
            _trial(variant, variants, round(mean + 0.001 * (s - 2), 6), seed=s, replicate=True)
            for s in range(1, seeds + 1)
        ]
    return trials


def add_to_study(database_url: str, optuna_name: str, trials: list[FrozenTrial]) -> None:
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    optuna.load_study(study_name=optuna_name, storage=url).add_trials(trials)


def spec(name: str, dataset: str, variants: list[str]) -> dict:
    """spec_harness.spec for these studies: four trials a variant, the default placements."""
    return base_spec(
        name, dataset=dataset, variants=variants, placements=None, n_trials=4 * len(variants)
    )
