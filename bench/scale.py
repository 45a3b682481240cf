"""Trials per minute with 1, 2 and 4 `studyd worker` processes on this machine, one study.

    python -m bench.scale [--workers 1 2 4] [--trials 24] [--epochs 4] [--width 128]
                          [--device cpu] [--postgres ADMIN_URL]

For each worker count: a fresh database (a SQLite file, or a new PostgreSQL database when
`--postgres` names a server role that may create databases), N `studyd worker` processes started
as separate OS processes, the way machines would run them; once all N have registered, the same
study is submitted with `submit_spec` (studyd.daemon.service), and the workers get SIGTERM
when it is done.

Two figures per count: `trials/min` over the busy span (first trial started → last trial
finished, from Optuna's own timestamps), and `wall` from the submission to the study's `done`.
Worker start-up (importing torch) is outside both: warm workers, as on a cluster. The 1-minute
load average before and after each run is printed beside it: on a shared machine the numbers are
only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna

from storage import queue
from storage.engine import make_engine
from storage.migrate import ensure_schema
from storage.optuna_storage import make_optuna_storage
from storage.throwaway_database import throwaway_database
from studyd.client.readiness import ProcessExited, wait_until_ready
from studyd.daemon.service import submit_spec

STUDYD = [sys.executable, "-m", "studyd.cli.main"]
START_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Run:
    workers: int
    trials: int
    busy_seconds: float
    wall_seconds: float
    load_before: float
    load_after: float

    @property
    def per_minute(self) -> float:
        return 60.0 * self.trials / self.busy_seconds


def bench_spec(trials: int, epochs: int, width: int) -> dict:
    """A fixed architecture on the bundled digits: every trial costs about the same."""
    return {
        "name": "scale",
        "dataset": {"name": "digits", "seed": 0},
        "model": {"depth": 2, "width": width},
        "dropout": {"variants": ["standard"], "placements": ["hidden"], "rate": [0.1, 0.6]},
        "training": {"epochs": epochs, "batch_size": 64, "optimizer": "adam", "lr": [1e-3, 1e-2]},
        "search": {"sampler": "random", "pruner": "none", "n_trials": trials, "seed": 0},
    }


@contextmanager
def fresh_database(postgres_admin_url: str | None, workdir: Path) -> Iterator[str]:
    if not postgres_admin_url:
        yield f"sqlite:///{workdir / f'scale-{uuid.uuid4().hex[:8]}.db'}"
        return
    with throwaway_database(postgres_admin_url, prefix="studyd_bench") as url:
        yield url


def load_average() -> float:
    return os.getloadavg()[0]


@contextmanager
def worker_processes(url: str, count: int, device: str, workdir: Path) -> Iterator[None]:
    """`count` worker processes, registered and idle on return; SIGTERM on the way out."""
    logs = [workdir / f"worker-{count}-{n}.log" for n in range(count)]
    processes = []
    for log in logs:
        with log.open("wb") as out:
            command = [*STUDYD, "worker", "--database-url", url, "--device", device]
            processes.append(
                subprocess.Popen([*command, "--poll", "0.2"], stdout=out, stderr=subprocess.STDOUT)
            )
    try:
        engine = make_engine(url)

        def registered() -> bool:
            return len(queue.list_workers(engine)) >= count

        try:
            wait_until_ready(registered, processes, timeout=START_TIMEOUT_S, every=0.2)
        except ProcessExited as exc:
            log = logs[processes.index(exc.process)]
            raise SystemExit(f"a worker exited at start:\n{log.read_text()}") from exc
        except TimeoutError as exc:
            raise SystemExit(f"{count} workers did not register in {START_TIMEOUT_S}s") from exc
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()


def measure(args: argparse.Namespace, count: int, workdir: Path) -> Run:
    with fresh_database(args.postgres, workdir) as url:
        ensure_schema(url)
        engine = make_engine(url)
        storage = make_optuna_storage(url)
        spec = bench_spec(args.trials, args.epochs, args.width)
        with worker_processes(url, count, args.device, workdir):
            load_before = load_average()
            began = time.monotonic()
            record = submit_spec(engine, storage, spec)
            while queue.get_study(engine, record.id).state not in ("done", "failed", "cancelled"):
                time.sleep(0.1)
            wall = time.monotonic() - began
            load_after = load_average()
        trials = optuna.load_study(study_name=record.optuna_name, storage=storage).trials
        engine.dispose()
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) != args.trials:
        raise SystemExit(f"{count} workers: {len(done)} of {args.trials} trials completed")
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    busy = (last - first).total_seconds()
    return Run(count, len(done), busy, wall, load_before, load_after)


def print_table(runs: list[Run]) -> None:
    base = runs[0].per_minute
    print(
        f"\n{'workers':>7}  {'trials':>6}  {'busy s':>7}  {'trials/min':>10}  {'speed-up':>8}  "
        f"{'wall s':>7}  {'load 1m before→after':>20}"
    )
    for r in runs:
        print(
            f"{r.workers:>7}  {r.trials:>6}  {r.busy_seconds:>7.1f}  {r.per_minute:>10.1f}  "
            f"{r.per_minute / base:>7.2f}x  {r.wall_seconds:>7.1f}  "
            f"{r.load_before:>9.2f} → {r.load_after:<8.2f}"
        )
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n{os.cpu_count()} CPUs; uptime: {uptime}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server (default: SQLite)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"one study: {args.trials} trials, digits, 2×{args.width} MLP, {args.epochs} epochs, "
        f"{args.device}, {backend}"
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="studyd-scale-") as tmp:
        for count in args.workers:
            runs.append(measure(args, count, Path(tmp)))
            r = runs[-1]
            print(f"  {count} worker(s): {r.per_minute:.1f} trials/min (load {r.load_after:.2f})")
    print_table(runs)


if __name__ == "__main__":
    main()
