"""One comparison across datasets, end to end: which dropout variant ranks best on five datasets.

    python -m bench.compare_datasets [--out DIR] [--trials 9] [--epochs 5]

Runs one study per dataset with the same space and `repeats: 3`, each trained by studyd's
worker in-process: digits, mnist1d and mnist-5k (built in), and scikit-learn's bundled wine and
breast-cancer tables as `npz:` files (standardised, as a user would). Then it asks the API
(`GET /compare`, in-process) which variant ranks best across them, and writes the answer and the
critical-difference diagram (`--out`, default ./compare-datasets).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import optuna
from fastapi.testclient import TestClient

from api.app import create_app
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from studyd.client.cd_diagram import write_cd_diagram
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.settings import Settings
from studyd.spec import load_spec

BUILT_IN = ("digits", "mnist1d", "mnist-5k")
TABLES = {"wine": "load_wine", "breast-cancer": "load_breast_cancer"}
SPEC = """
name: cmp-{label}
dataset: {{name: {dataset}}}
model: {{depth: 1, width: [32, 256]}}
dropout: {{variants: [none, standard, gaussian], placements: [hidden], rate: [0.1, 0.6]}}
training: {{epochs: {epochs}, lr: [0.0005, 0.02]}}
search: {{n_trials: {trials}, pruner: none, seed: 0}}
repeats: 3
top_k: 1
"""


def _tables(directory: Path) -> dict[str, str]:
    """scikit-learn's bundled tables as standardised `npz:` files: label → dataset name."""
    import numpy as np
    import sklearn.datasets

    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for label, loader in TABLES.items():
        x, y = getattr(sklearn.datasets, loader)(return_X_y=True)
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        path = directory / f"{label}.npz"
        np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))
        out[label] = f"npz:{path.resolve()}"
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("compare-datasets"))
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{args.out / 'studyd.db'}"
    ensure_schema(url)
    engine, storage = make_engine(url), make_optuna_storage(url)
    began = time.monotonic()
    ids = []
    data = args.out / "data"
    datasets = {name: name for name in BUILT_IN} | _tables(data)
    for label, dataset in datasets.items():
        text = SPEC.format(label=label, dataset=dataset, epochs=args.epochs, trials=args.trials)
        ids.append(submit_spec(engine, storage, load_spec(text)).id)
        options = WorkerOptions(
            data_dir=data, data_roots=[data], device="cpu", once=True, heartbeat=1.0,
            grace=60, poll=0.05, batch_trials=1, threads=1,
        )  # fmt: skip
        Worker(engine, storage, options).run()
        print(f"{label}: study {ids[-1]} done ({time.monotonic() - began:.0f} s)", flush=True)
    settings = Settings(database_url=url, data_dir=data)
    with TestClient(create_app(settings)) as client:
        response = client.get("/compare", params={"ids": ",".join(map(str, ids))})
    response.raise_for_status()
    comparison = response.json()
    (args.out / "comparison.json").write_text(json.dumps(comparison, indent=2))
    write_cd_diagram(comparison, args.out / "cd.png")
    for study in comparison["studies"]:
        cells = ", ".join(
            f"{v} {s['mean']:.4f} (rank {s['rank']:g}{'' if s['replicated'] else ', unreplicated'})"
            for v, s in study["scores"].items()
        )
        print(f"  {study['name']}: {cells}")
    print(comparison["answer"])
    print(
        f"({time.monotonic() - began:.0f} s, load average {os.getloadavg()[0]:.1f}; "
        f"diagram {args.out / 'cd.png'})"
    )
    engine.dispose()
    return comparison


if __name__ == "__main__":
    main()
