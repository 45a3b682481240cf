"""Helpers for the API tests: the app in this process (see serve_harness), specs, and trials
written the worker's way."""

from __future__ import annotations

import math
import random
from typing import Any, Protocol

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from serve_harness import Api, in_process_api  # noqa: F401 - the API tests import them from here
from spec_harness import spec  # noqa: F401 - the API tests import it from here

optuna.logging.set_verbosity(optuna.logging.WARNING)


class HasDatabase(Protocol):
    """An app in this process or a server process: what the trial helpers below write to."""

    database_url: str


def submit(api: Api, **kwargs: Any) -> dict[str, Any]:
    response = api.client.post("/studies", json=spec(**kwargs))
    assert response.status_code == 201, response.text
    return response.json()


def optuna_study(api: HasDatabase, optuna_name: str) -> optuna.Study:
    """The study's Optuna study on the app's database, as a worker loads it."""
    return optuna.load_study(study_name=optuna_name, storage=_optuna_url(api.database_url))


VARIANTS = ["standard", "gaussian"]
DISTRIBUTIONS = {
    "variant": CategoricalDistribution(VARIANTS),
    "rate": FloatDistribution(0.1, 0.7),
    "width": IntDistribution(16, 256, log=True),
}


def add_trials(
    api: HasDatabase, optuna_name: str, n: int, *, pruned_every: int = 0, failed: int = 0
) -> list[float]:
    """Finish `n` trials on the study with what a worker records (parameters, attributes,
    intermediate values, the end state); returns the values of the complete ones.

    Each trial is written whole (`Study.add_trial`), one transaction, rather than asked, set and
    told row by row: the API reads the same rows, at a fraction of the round trips.
    """
    study = optuna_study(api, optuna_name)
    rng = random.Random(f"{optuna_name}-{len(study.get_trials(deepcopy=False))}")
    values = []
    for i in range(n):
        params = {
            "variant": rng.choice(VARIANTS),
            "rate": rng.uniform(0.1, 0.7),
            "width": round(math.exp(rng.uniform(math.log(16), math.log(256)))),
        }
        value = _value(**params)
        if pruned_every and i % pruned_every == pruned_every - 1:
            state, told = TrialState.PRUNED, value  # Optuna keeps the last reported value
        elif i < failed:
            state, told = TrialState.FAIL, None
        else:
            state, told = TrialState.COMPLETE, value
            values.append(value)
        study.add_trial(
            create_trial(
                state=state, value=told, params=params, distributions=DISTRIBUTIONS,
                user_attrs=_attrs(i, value, **params),
                intermediate_values={e: value * (e + 1) / 3 for e in range(3)},
            )
        )  # fmt: skip
    return values


def _value(variant: str, rate: float, width: int) -> float:
    return round(0.5 + rate / 2 + (0.05 if variant == "gaussian" else 0) + width / 1e4, 6)


def _attrs(i: int, value: float, variant: str, rate: float, width: int) -> dict[str, Any]:
    curve = [
        {
            "epoch": e,
            "train_loss": 1.0 / (e + 1),
            "train_acc": value,
            "val_loss": 0.5,
            "val_acc": value * (e + 1) / 3,
            "seconds": 0.1,
        }
        for e in range(3)
    ]
    return {
        "variant": variant,
        "placement": "hidden" if i % 3 else "input+hidden",
        "config": {"hidden": [width], "variant": variant, "rates": [rate]},
        "train": {"epochs": 3, "lr": 0.001},
        "curve": curve,
        "val_acc": value,
        "gap": 0.01,
    }


def _optuna_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)
