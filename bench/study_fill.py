"""A finished study of n synthetic trials, written in bulk with SQL in Optuna's own schema.

What a worker would have written for each trial (params, value, per-epoch intermediate values,
and the user attributes: config, curve, diagnostics...), so that the API is read as in use,
without training anything: `fill_study(url, "large", 10_000)` takes seconds, not hours.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from storage import queue
from storage.engine import make_engine
from storage.optuna_schema import (
    studies,
    trial_intermediate_values,
    trial_params,
    trial_user_attributes,
    trial_values,
    trials,
)
from storage.optuna_storage import make_optuna_storage
from storage.schema import Study

EPOCHS = 20
DISTRIBUTIONS = {
    "variant": CategoricalDistribution(["none", "standard", "gaussian", "dropconnect"]),
    "rate": FloatDistribution(0.05, 0.7),
    "lr": FloatDistribution(1e-4, 1e-2, log=True),
    "depth": IntDistribution(1, 4),
    "width": IntDistribution(32, 512, log=True),
}
SPEC = {
    "name": "api-load",
    "dataset": {"name": "digits"},
    "dropout": {"variants": ["none", "standard", "gaussian", "dropconnect"], "rate": [0.05, 0.7]},
    "search": {"n_trials": 10},
}


def _trial_rows(n: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """One synthetic finished trial per item: what a worker would have written for it."""
    for number in range(n):
        params = {name: d.to_internal_repr(_draw(d, rng)) for name, d in DISTRIBUTIONS.items()}
        final = 0.5 + 0.45 * rng.random()
        curve = [
            {
                "epoch": e,
                "train_loss": 2.3 / (e + 1),
                "train_acc": min(final + 0.02, 0.999),
                "val_loss": 2.0 / (e + 1),
                "val_acc": final * (1 - 0.5 ** (e + 1)),
                "seconds": 0.01,
            }
            for e in range(EPOCHS)
        ]
        variant = DISTRIBUTIONS["variant"].choices[int(params["variant"])]
        attrs = {
            "config": {"variant": variant, "hidden": [128, 128], "rates": [params["rate"]] * 2},
            "train": {"epochs": EPOCHS, "batch_size": 128, "lr": params["lr"], "seed": 0},
            "variant": variant,
            "placement": "hidden",
            "dataset": "digits",
            "config_key": f"{number:016x}",
            "run_key": f"{number:016x}",
            "curve": curve,
            "train_acc": final + 0.02,
            "val_acc": final,
            "train_loss": 0.1,
            "val_loss": 0.3,
            "gap": 0.02,
            "param_count": 25_000,
            "epoch_seconds": 0.01,
            "device": "cpu",
            "worker_id": 1,
            "host": "bench",
            "diagnostics": {"val_ece": 0.05, "mc_acc": final, "ms_per_1k": 0.2},
            "val_ece": 0.05,
            "mc_acc": final,
            "ms_per_1k": 0.2,
        }
        yield {"number": number, "params": params, "value": final, "curve": curve, "attrs": attrs}


def _draw(dist: Any, rng: random.Random) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return rng.choice(dist.choices)
    if isinstance(dist, IntDistribution):
        return rng.randint(dist.low, dist.high)
    return rng.uniform(dist.low, dist.high)


def fill_study(url: str, name: str, n: int, seed: int = 0) -> int:
    """A done study of `n` COMPLETE trials written with bulk SQL; returns its id."""
    engine = make_engine(url)
    storage = make_optuna_storage(url)
    record = queue.submit_study(engine, name=name, spec={**SPEC, "name": name}, target_trials=n)
    optuna.create_study(storage=storage, study_name=record.optuna_name, direction="maximize")
    storage.engine.dispose()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rng = random.Random(seed)
    with engine.begin() as conn:
        study_id = conn.execute(
            sa.select(studies.c.study_id).where(studies.c.study_name == record.optuna_name)
        ).scalar_one()
        rows = list(_trial_rows(n, rng))
        conn.execute(
            trials.insert(),
            [
                {
                    "number": r["number"],
                    "study_id": study_id,
                    "state": "COMPLETE",
                    "datetime_start": now,
                    "datetime_complete": now,
                }
                for r in rows
            ],
        )
        ids = dict(
            conn.execute(
                sa.select(trials.c.number, trials.c.trial_id).where(trials.c.study_id == study_id)
            ).all()
        )
        dists = {k: optuna.distributions.distribution_to_json(d) for k, d in DISTRIBUTIONS.items()}
        conn.execute(
            trial_params.insert(),
            [
                {
                    "trial_id": ids[r["number"]],
                    "param_name": k,
                    "param_value": v,
                    "distribution_json": dists[k],
                }
                for r in rows
                for k, v in r["params"].items()
            ],
        )
        conn.execute(
            trial_values.insert(),
            [
                {
                    "trial_id": ids[r["number"]],
                    "objective": 0,
                    "value": r["value"],
                    "value_type": "FINITE",
                }
                for r in rows
            ],
        )
        conn.execute(
            trial_intermediate_values.insert(),
            [
                {
                    "trial_id": ids[r["number"]],
                    "step": m["epoch"],
                    "intermediate_value": m["val_acc"],
                    "intermediate_value_type": "FINITE",
                }
                for r in rows
                for m in r["curve"]
            ],
        )
        conn.execute(
            trial_user_attributes.insert(),
            [
                {"trial_id": ids[r["number"]], "key": k, "value_json": json.dumps(v)}
                for r in rows
                for k, v in r["attrs"].items()
            ],
        )
        conn.execute(
            sa.update(Study)
            .where(Study.id == record.id)
            .values(state="done", claimed=n, finished=n, started_at=now, finished_at=now)
        )
    if engine.dialect.name == "postgresql":
        # A study that grew over hours has been vacuumed and analysed by autovacuum and its
        # writes checkpointed; one written in bulk a moment ago has not: its counts read the heap
        # (no visibility map yet), and autovacuum (~10 s later) and the checkpoint of its
        # ~100 MB of WAL would run in the middle of the measurement.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            try:
                conn.exec_driver_sql("CHECKPOINT")
            except sa.exc.DBAPIError as exc:  # needs superuser or pg_checkpoint
                print(f"  (no CHECKPOINT after the fill: {str(exc).splitlines()[0]})")
    engine.dispose()
    return record.id
