"""How many distinct configurations a study's trial budget buys: run an example study with one real
worker on a fresh SQLite database and count its trials by canonical run (`run_key`).

    python -m bench.distinct_budget [--examples d2l cs231n] [--epochs N] [--batch-trials K]

`--epochs` overrides the spec's epochs (a shortened copy: the sampler then sees other values, so
its proposals differ from a full run's). Prints, per example: the target (`n_trials`), the slots
counted, the complete trials, the distinct runs they trained, the repeats told without counting,
and why the search ended early if it did.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib import resources
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from storage.engine import make_engine
from storage.migrate import upgrade
from storage.optuna_storage import make_optuna_storage
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import validate_spec


def run_example(name: str, epochs: int | None, batch_trials: str, root: Path) -> dict[str, object]:
    raw = yaml.safe_load(resources.files("studyd.examples").joinpath(f"{name}.yaml").read_text())
    if epochs is not None:
        raw["training"]["epochs"] = epochs
    spec = validate_spec(raw)
    url = f"sqlite:///{root / f'{name}-{time.monotonic_ns()}.db'}"
    upgrade(url)
    engine = make_engine(url)
    storage = make_optuna_storage(url)
    record = submit_spec(engine, storage, spec)
    options = WorkerOptions(device="cpu", once=True, data_dir=root, batch_trials=batch_trials)
    started = time.monotonic()
    Worker(engine, storage, options).run()
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    search = [t for t in finished if "replicate_of" not in t.user_attrs]
    from storage import queue

    done = queue.get_study(engine, record.id)
    engine.dispose()
    return {
        "example": name,
        "epochs": spec.training.epochs.value,
        "n_trials": spec.search.n_trials,
        "counted": done.finished,
        "finished_trials": len(search),
        "distinct_runs": len({t.user_attrs.get("run_key") for t in search}),
        "repeats_told": sum("duplicate_of" in t.user_attrs for t in search),
        "reused": sum("reused_from" in t.user_attrs for t in search),
        "search_ended": study.user_attrs.get("search_ended"),
        "test_score": done.test_score,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=["d2l", "cs231n"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-trials", default="1")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="studyd-distinct-") as tmp:
        for name in args.examples:
            print(run_example(name, args.epochs, args.batch_trials, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
