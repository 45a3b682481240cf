"""Helpers for the API tests: a real server process, specs, and trials written the worker's way."""

from __future__ import annotations

import uuid
from typing import Any

import optuna
from serve_harness import Server, start_server  # noqa: F401 - the API tests import it from here

optuna.logging.set_verbosity(optuna.logging.WARNING)


def spec(name: str | None = None, **search: Any) -> dict[str, Any]:
    """A small valid spec (nothing trains: these servers run no workers)."""
    return {
        "name": name or f"api-{uuid.uuid4().hex[:8]}",
        "dataset": "digits",
        "dropout": {"variants": ["standard", "gaussian"], "placements": ["hidden"]},
        "training": {"epochs": 2},
        "search": {"n_trials": 12, **search},
    }


def submit(server: Server, **kwargs: Any) -> dict[str, Any]:
    response = server.client.post("/studies", json=spec(**kwargs))
    assert response.status_code == 201, response.text
    return response.json()


def optuna_study(server: Server, optuna_name: str) -> optuna.Study:
    """The study's Optuna study on the server's database, as a worker loads it."""
    return optuna.load_study(study_name=optuna_name, storage=_optuna_url(server.database_url))


def add_trials(
    server: Server, optuna_name: str, n: int, *, pruned_every: int = 0, failed: int = 0
) -> list[float]:
    """Finish `n` trials on the study the way a worker records them; returns their values."""
    study = optuna_study(server, optuna_name)
    values = []
    for i in range(n):
        trial = study.ask()
        variant = trial.suggest_categorical("variant", ["standard", "gaussian"])
        rate = trial.suggest_float("rate", 0.1, 0.7)
        width = trial.suggest_int("width", 16, 256, log=True)
        value = round(0.5 + rate / 2 + (0.05 if variant == "gaussian" else 0) + width / 1e4, 6)
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
        attrs = {
            "variant": variant,
            "placement": "hidden" if i % 3 else "input+hidden",
            "config": {"hidden": [width], "variant": variant, "rates": [rate]},
            "train": {"epochs": 3, "lr": 0.001},
            "curve": curve,
            "val_acc": value,
            "gap": 0.01,
        }
        for key, v in attrs.items():
            trial.set_user_attr(key, v)
        for point in curve:
            trial.report(point["val_acc"], point["epoch"])
        if pruned_every and i % pruned_every == pruned_every - 1:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif i < failed:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
            values.append(value)
    return values


def _optuna_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)
