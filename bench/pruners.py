"""Which pruner reaches a good answer first: pruned fraction, epochs trained and time to target.

    python -m bench.pruners [--spaces searched fixed] [--seeds 0 1 2 3 4] [--trials 20]
                            [--epochs 30] [--pruners none median median_w5 percentile sha hb]

Each (space, pruner, sampler seed) is one study run by studyd's real worker (default options,
so `--batch-trials auto`) on a fresh SQLite database, MNIST-1D (3200/800 split), Adam 1e-3,
batch 128, TPE. The target of a (space, seed) is the study without pruning's final best minus
0.5 points; time to target is wall seconds from the first trial's start until the best validation
accuracy reaches it (completed trials only), epochs to target the epochs trained by then (a
figure the machine's load does not move). The 1-minute load average is printed beside each row.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from bench.study_runs import TOLERANCE, StudyRun, study_run
from bench.throughput import studyd_trials
from models.training import resolve_device
from studyd.spec import StudySpec, validate_spec

SPACES: dict[str, dict[str, Any]] = {
    "searched": {"depth": [1, 3], "width": [4, 128], "log": True},
    "fixed": {"depth": 2, "width": 128},
}
PRUNERS: dict[str, dict[str, Any] | str] = {
    "none": "none",
    "median": {"name": "median", "startup_trials": 5, "warmup_epochs": 1},
    "median_w5": {"name": "median", "startup_trials": 5, "warmup_epochs": 5},
    "percentile": {"name": "percentile", "percentile": 25.0, "startup_trials": 5},
    "sha": {"name": "successive_halving", "warmup_epochs": 1},
    "hb": {"name": "hyperband", "warmup_epochs": 1},
}


def spec_for(space: str, pruner: str, seed: int, trials: int, epochs: int) -> StudySpec:
    return validate_spec(
        {
            "name": f"pruners-{space}-{pruner}-{seed}",
            "dataset": {"name": "mnist1d", "seed": 0},
            "model": SPACES[space],
            "dropout": {"variants": ["standard"], "placements": ["hidden"], "rate": [0.2, 0.5]},
            "training": {"epochs": epochs, "batch_size": 128, "lr": 1e-3},
            "search": {
                "sampler": "tpe",
                "pruner": PRUNERS[pruner],
                "n_trials": trials,
                "seed": seed,
            },
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="*", default=list(SPACES))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--pruners", nargs="*", default=list(PRUNERS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("studyd").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    device = str(resolve_device(args.device))
    pruners = ["none", *[p for p in args.pruners if p != "none"]]
    with tempfile.TemporaryDirectory(prefix="studyd-pruners-") as tmp:
        root = Path(tmp)
        for space in args.spaces:
            print(f"\n{space} space, {args.trials} trials × {args.epochs} epochs, mnist1d")
            runs: dict[str, dict[int, StudyRun]] = {p: {} for p in pruners}
            for seed in args.seeds:
                for pruner in pruners:
                    spec = spec_for(space, pruner, seed, args.trials, args.epochs)
                    runs[pruner][seed] = run = study_run(studyd_trials(spec, device, root))
                    print(
                        f"  seed {seed} {pruner:10s} best {run.best:.3f} pruned "
                        f"{run.pruned:4.0%} epochs {run.epochs:4d} wall {run.wall:6.1f} s"
                        f"  [load {os.getloadavg()[0]:.2f}]",
                        flush=True,
                    )
            print(
                f"  {'pruner':10s} {'best':>6s} {'pruned':>7s} {'epochs':>7s} {'wall s':>7s}"
                f" {'to target s':>12s} {'epochs to target':>17s} {'reached':>8s}"
            )
            for pruner in pruners:
                row = [runs[pruner][s] for s in args.seeds]
                hits = [
                    r.to_target(runs["none"][s].best - TOLERANCE)
                    for s, r in zip(args.seeds, row, strict=True)
                ]
                reached = [h for h in hits if h is not None]
                med = statistics.median
                to_s = med([h[0] for h in reached]) if reached else float("nan")
                to_e = med([h[1] for h in reached]) if reached else float("nan")
                print(
                    f"  {pruner:10s} {med([r.best for r in row]):6.3f}"
                    f" {med([r.pruned for r in row]):7.0%} {med([r.epochs for r in row]):7.0f}"
                    f" {med([r.wall for r in row]):7.1f} {to_s:12.1f} {to_e:17.0f}"
                    f" {len(reached):>4d}/{len(row)}"
                )
            print("  (medians over seeds; to target: over the seeds that reached it)")


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"\n{time.perf_counter() - started:.0f} s in all")
