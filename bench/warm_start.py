"""Does `search.warm_start` reach a cold study's best sooner? Time and trials to that best.

    python -m bench.warm_start [--seeds 5] [--trials 16] [--source-trials 16] [--epochs 6]

Per seed s, three studies of one spec on mnist1d (where learning rate, width and dropout matter:
accuracies 0.2–0.6), each trained by studyd's own worker in this process, one trial at a time:
- *source*: an earlier study of the same spec, search seed 1000 + s (the history one has);
- *cold*: search seed s; its best value over `--trials` trials is the target;
- *warm*: search seed s with `warm_start: [source]`.
For cold and warm: seconds from the study's first new trial's start, and new trials, until a new
trial first reaches the cold study's best (warm: None when it never does within the same budget).
Carried trials do not count as reaching it; how often the source already held a value that high
is reported apart (the history alone would have answered).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from bench.study_runs import study_run
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import load_spec

SPEC = """
name: {name}
dataset: {{name: mnist1d}}
model: {{depth: [1, 3], width: [16, 512]}}
dropout: {{variants: [none, standard, gaussian], placements: [hidden], rate: [0.05, 0.7]}}
training: {{epochs: {epochs}, lr: [0.0001, 0.05]}}
search: {{n_trials: {trials}, pruner: none, seed: {seed}{warm}}}
"""


@dataclass
class SeedResult:
    seed: int
    cold_best: float
    cold_seconds: float
    cold_trials: int
    warm_best: float
    warm_seconds: float | None  # None: never reached the cold best with the same budget
    warm_trials: int | None
    source_best: float
    carried: int


def _run_study(engine, storage, data_dir: Path, text: str) -> optuna.Study:
    record = submit_spec(engine, storage, load_spec(text))
    options = WorkerOptions(
        data_dir=data_dir, device="cpu", once=True, heartbeat=1.0, grace=60, poll=0.05,
        batch_trials=1, threads=1,
    )  # fmt: skip
    Worker(engine, storage, options).run()
    return optuna.load_study(study_name=record.optuna_name, storage=storage)


def _new_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if "warm_start_from" not in t.user_attrs and t.datetime_complete is not None
    ]


def _to_target(study: optuna.Study, target: float) -> tuple[float | None, int | None, float]:
    run = study_run(_new_trials(study))
    for n, (seconds, _epochs, best) in enumerate(run.curve, start=1):
        if best >= target - 1e-12:
            return seconds, n, run.best
    return None, None, run.best


def one_seed(seed: int, args: argparse.Namespace, directory: Path) -> SeedResult:
    url = f"sqlite:///{directory / f'warm-{seed}.db'}"
    ensure_schema(url)
    engine, storage = make_engine(url), make_optuna_storage(url)
    common = {"epochs": args.epochs}
    source = _run_study(
        engine, storage, directory,
        SPEC.format(name="source", seed=1000 + seed, trials=args.source_trials, warm="", **common),
    )  # fmt: skip
    source_id = source.user_attrs["studyd_id"]
    cold = _run_study(
        engine, storage, directory,
        SPEC.format(name="cold", seed=seed, trials=args.trials, warm="", **common),
    )  # fmt: skip
    warm = _run_study(
        engine, storage, directory,
        SPEC.format(
            name="warm", seed=seed, trials=args.trials, warm=f", warm_start: [{source_id}]",
            **common,
        ),
    )  # fmt: skip
    target = max(t.value for t in cold.get_trials(states=(TrialState.COMPLETE,)))
    cold_s, cold_n, _ = _to_target(cold, target)
    warm_s, warm_n, warm_best = _to_target(warm, target)
    engine.dispose()
    return SeedResult(
        seed=seed,
        cold_best=target,
        cold_seconds=cold_s,
        cold_trials=cold_n,
        warm_best=warm_best,
        warm_seconds=warm_s,
        warm_trials=warm_n,
        source_best=source.best_value,
        carried=int(warm.user_attrs["warm_start"]["trials"]),
    )


def summarize(results: list[SeedResult]) -> dict[str, Any]:
    reached = [r for r in results if r.warm_seconds is not None]
    return {
        "seeds": len(results),
        "warm_reached": len(reached),
        "cold_median_seconds": statistics.median(r.cold_seconds for r in results),
        "cold_median_trials": statistics.median(r.cold_trials for r in results),
        "warm_median_seconds_reached": (
            statistics.median(r.warm_seconds for r in reached) if reached else None
        ),
        "warm_median_trials_reached": (
            statistics.median(r.warm_trials for r in reached) if reached else None
        ),
        "warm_faster": sum(
            r.warm_seconds is not None and r.warm_seconds < r.cold_seconds for r in results
        ),
        "source_already_at_target": sum(r.source_best >= r.cold_best for r in results),
        "warm_best_minus_cold_best_mean": statistics.fmean(
            r.warm_best - r.cold_best for r in results
        ),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--source-trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    began = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="warm-start-") as tmp:
        for seed in range(1, args.seeds + 1):
            result = one_seed(seed, args, Path(tmp))
            results.append(result)
            warm = "never" if result.warm_seconds is None else f"{result.warm_seconds:6.1f}s"
            print(
                f"seed {seed}: cold best {result.cold_best:.4f} at {result.cold_seconds:6.1f}s "
                f"(trial {result.cold_trials}); warm ({result.carried} carried, source best "
                f"{result.source_best:.4f}) reaches it at {warm} "
                f"(trial {result.warm_trials}), its best {result.warm_best:.4f}",
                flush=True,
            )
    summary = summarize(results) | {
        "wall_seconds": time.monotonic() - began,
        "load_average": os.getloadavg(),
        "args": vars(args) | {"json": str(args.json) if args.json else None},
    }
    print(json.dumps(summary, indent=2, default=str))
    if args.json:
        payload = {"summary": summary, "seeds": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main()
