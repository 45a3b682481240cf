"""API latency at scale: 50 concurrent clients over a study of 10 000 trials, SQLite and PostgreSQL.

    python -m bench.api_load [--trials 10000] [--clients 50] [--requests 1000]
                             [--backends sqlite postgresql]

Per backend: a fresh database (SQLite file; PostgreSQL: a new database on
STUDYD_TEST_POSTGRES_URL), a small study (100 trials) and a large one (`--trials`), both filled in
bulk with SQL in Optuna's own schema (trials, params, values, per-epoch intermediate values and
the user attributes a worker writes: config, curve, diagnostics...), then `studyd serve
--no-workers` in its own process. `--clients` httpx clients share `--requests` requests per
endpoint: `GET /studies/{id}`, `GET /studies/{id}/trials?limit=100` (random offsets) and
`GET /studies/{id}/summary` (its cold first request, which computes the importances, is timed
alone first). Printed: p50/p99 latency and requests/s per endpoint and study, and
the API process's RSS after start, after the small study's load and after the large one's (it
must not grow with study size). Client and server share this machine's cores: latencies include
the client's own scheduling, so the API process's CPU time per request is printed too (with 50
clients in a closed loop, p50 ≈ 50 / throughput by Little's law); every figure has the 1-minute
load average next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from storage.engine import make_engine
from storage.migrate import ensure_schema
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


# --- filling a study in bulk -----------------------------------------------------------------


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
    import optuna

    from storage import queue
    from storage.optuna_storage import make_optuna_storage

    engine = make_engine(url)
    storage = make_optuna_storage(url)
    record = queue.submit_study(engine, name=name, spec={**SPEC, "name": name}, target_trials=n)
    optuna.create_study(storage=storage, study_name=record.optuna_name, direction="maximize")
    storage.engine.dispose()
    meta = sa.MetaData()
    meta.reflect(
        engine,
        only=[
            "studies",
            "trials",
            "trial_params",
            "trial_values",
            "trial_intermediate_values",
            "trial_user_attributes",
        ],
    )
    t = meta.tables
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rng = random.Random(seed)
    with engine.begin() as conn:
        study_id = conn.execute(
            sa.select(t["studies"].c.study_id).where(
                t["studies"].c.study_name == record.optuna_name
            )
        ).scalar_one()
        rows = list(_trial_rows(n, rng))
        conn.execute(
            t["trials"].insert(),
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
                sa.select(t["trials"].c.number, t["trials"].c.trial_id).where(
                    t["trials"].c.study_id == study_id
                )
            ).all()
        )
        dists = {k: optuna.distributions.distribution_to_json(d) for k, d in DISTRIBUTIONS.items()}
        conn.execute(
            t["trial_params"].insert(),
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
            t["trial_values"].insert(),
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
            t["trial_intermediate_values"].insert(),
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
            t["trial_user_attributes"].insert(),
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
    engine.dispose()
    return record.id


# --- the server and the clients --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(url: str) -> Iterator[tuple[str, int]]:
    """`studyd serve --no-workers` on `url`; yields (base URL, its pid)."""
    port = _free_port()
    env = {**os.environ, "STUDYD_DATABASE_URL": url}
    env.pop("STUDYD_API_TOKEN", None)  # no auth: the bench measures the routes
    command = [sys.executable, "-m", "studyd.cli.main", "serve", "--no-workers"]
    command += ["--port", str(port), "--log-level", "warning"]
    # Its log (uvicorn, Optuna's per-request study notices) would drown the figures.
    log = open(Path(tempfile.gettempdir()) / "studyd-api-load-serve.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(command, env=env, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("studyd serve did not come up")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


async def drive(base: str, paths: list[str], clients: int, requests: int) -> tuple[list, float]:
    """`requests` GETs spread over `clients` concurrent clients; (latencies in s, wall s)."""
    latencies: list[float] = []
    errors = dropped = 0
    queue_: asyncio.Queue[str] = asyncio.Queue()
    for i in range(requests):
        queue_.put_nowait(paths[i % len(paths)])
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors, dropped
        while not queue_.empty():
            path = queue_.get_nowait()
            started = time.perf_counter()
            try:
                response = await http.get(path)
            except httpx.TransportError:
                # A keep-alive connection the server closed as this request went out: counted
                # (printed), and the request is not retried.
                dropped += 1
                continue
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{errors} of {requests} requests failed")
    if dropped:
        print(f"  ({dropped} of {requests} requests lost to closed connections)")
    return latencies, wall


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


def run_backend(label: str, url: str, args: argparse.Namespace) -> None:
    ensure_schema(url)
    started = time.perf_counter()
    small = fill_study(url, "small", 100, seed=1)
    big = fill_study(url, "large", args.trials, seed=2)
    print(f"\n{label}: filled 100 + {args.trials} trials in {time.perf_counter() - started:.1f} s")
    with serve(url) as (base, pid):
        httpx.get(f"{base}/studies/{small}", timeout=60)  # the first request builds lazy state
        print(f"  API RSS after start        {rss_mib(pid):7.1f} MiB")
        for name, study_id, n in (("small", small, 100), ("large", big, args.trials)):
            # The summary's importances (fANOVA) are computed once per complete-trial count and
            # cached: time that cold request alone, then measure the steady state.
            started = time.perf_counter()
            httpx.get(f"{base}/studies/{study_id}/summary", timeout=900).raise_for_status()
            cold = time.perf_counter() - started
            print(f"  {name:5s} ({n:>5} trials) cold GET /summary {cold:7.2f} s  [load {_load()}]")
            rng = random.Random(0)
            endpoints = {
                "GET /studies/{id}": [f"/studies/{study_id}"],
                "GET /trials?limit=100": [
                    f"/studies/{study_id}/trials?limit=100&offset={rng.randrange(0, n, 100)}"
                    for _ in range(50)
                ],
                "GET /summary": [f"/studies/{study_id}/summary"],
            }
            for endpoint, paths in endpoints.items():
                cpu = cpu_seconds(pid)
                lat, wall = asyncio.run(drive(base, paths, args.clients, args.requests))
                cpu_ms = (cpu_seconds(pid) - cpu) / len(lat) * 1e3
                print(
                    f"  {name:5s} ({n:>5} trials) {endpoint:22s} p50 {_pct(lat, 50) * 1e3:7.1f} ms"
                    f"  p99 {_pct(lat, 99) * 1e3:7.1f} ms  {len(lat) / wall:6.0f} req/s"
                    f"  API CPU {cpu_ms:5.1f} ms/req  RSS {rss_mib(pid):5.0f} MiB  [load {_load()}]"
                )
            print(f"  API RSS after {name:5s} study {rss_mib(pid):7.1f} MiB")


@contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new database on the server of `admin_url`, dropped afterwards."""
    import psycopg

    name = f"studyd_api_load_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint and study")
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cpus, {args.clients} clients, {args.requests} requests per endpoint")
    for backend in args.backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="studyd-api-load-") as tmp:
                run_backend("sqlite", f"sqlite:///{tmp}/api.db", args)
        else:
            admin = os.environ.get("STUDYD_TEST_POSTGRES_URL")
            if not admin:
                print("\npostgresql: skipped (set STUDYD_TEST_POSTGRES_URL)")
                continue
            with fresh_postgres(admin) as url:
                run_backend("postgresql", url, args)


if __name__ == "__main__":
    main()
