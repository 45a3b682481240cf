"""API latency at scale: 50 concurrent clients over a study of 10 000 trials, SQLite and PostgreSQL.

    python -m bench.api_load [--trials 10000] [--clients 50] [--requests 1000] [--sequential 200]
                             [--wrk-seconds 10] [--backends sqlite postgresql]
    python -m bench.api_load --open-loop [--rate 100] [--seconds 10] [--ramp 25 50 75 100 ...]

Per backend: a fresh database (SQLite file; PostgreSQL: a new database on
STUDYD_TEST_POSTGRES_URL), a small study (100 trials) and a large one (`--trials`), both filled in
bulk with SQL in Optuna's own schema (trials, params, values, per-epoch intermediate values and
the user attributes a worker writes: config, curve, diagnostics...), then `studyd serve
--no-workers` in its own process. Endpoints: `GET /studies/{id}`, `GET /studies/{id}/trials?
limit=100` (random offsets) and `GET /studies/{id}/summary` (its cold first request, which
computes the importances, is timed alone first). Each endpoint is driven three ways, printed side
by side: one client in sequence (`--sequential` requests: the server's own latency), `--clients`
closed-loop httpx clients sharing `--requests` requests, and — when `wrk` is installed (Debian
package `wrk`) — `--clients` wrk connections for `--wrk-seconds`. Printed per mode: p50/p99
latency, requests/s, the API process's CPU ms per request (and the httpx client's own, which
shares the machine's cores with the server), and the 1-minute load average. The API process's
RSS is printed after start and after each study's load: it must not grow with study size.

`--open-loop` sends requests at a fixed rate instead, whatever the server's pace (open_loop.py):
`--rate` requests/s of mixed reads (the study, a 100-trial page, the summary, in turn) on the large
study for `--seconds`, latency counted from when each request was due; then each `--ramp` rate,
lowest first, until p99 crosses `--goal-ms` (50) or the run falls behind: the saturation rate.

With N closed-loop clients, p50 ≈ N / throughput (Little's law): at 50 clients a p99 under 50 ms
needs over 1000 requests/s, i.e. under 1 ms of server CPU per request on a core the clients do
not also use. The sequential figures are the server's own cost; the concurrent ones are mostly
queueing, and on a 2-core machine the clients take their share of the cores too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import httpx

from bench.api_server import cpu_seconds, load_average, rss_mib, serve, settle
from bench.open_loop import run_open_loop
from bench.study_fill import fill_study
from storage.migrate import ensure_schema
from storage.throwaway_database import throwaway_database


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


def sequential(base: str, paths: list[str], requests: int) -> tuple[list[float], float]:
    """One client, one request at a time: the server's own latency, no queueing."""
    latencies = []
    with httpx.Client(base_url=base, timeout=60) as http:
        started = time.perf_counter()
        for i in range(requests):
            t0 = time.perf_counter()
            http.get(paths[i % len(paths)]).raise_for_status()
            latencies.append(time.perf_counter() - t0)
        return latencies, time.perf_counter() - started


_WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""
_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def run_wrk(base: str, paths: list[str], clients: int, seconds: int) -> dict[str, float]:
    """`clients` wrk connections for `seconds`: p50/p99 (s), requests/s and request count."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", script.name, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s*{pct}%\s+([\d.]+)(\w+)", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * _WRK_UNITS[unit]

    return {
        "p50": latency("50"),
        "p99": latency("99"),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "n": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
    }


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


def _row(mode: str, p50: float, p99: float, rps: float, api_ms: float, extra: str = "") -> str:
    return (
        f"      {mode:14s} p50 {p50 * 1e3:7.1f} ms  p99 {p99 * 1e3:7.1f} ms  {rps:6.0f} req/s"
        f"  API CPU {api_ms:5.2f} ms/req{extra}  [load {load_average()}]"
    )


def measure(base: str, pid: int, paths: list[str], args: argparse.Namespace) -> None:
    """One endpoint three ways, one printed line each."""
    settle(pid)
    cpu = cpu_seconds(pid)
    lat, wall = sequential(base, paths, args.sequential)
    api_ms = (cpu_seconds(pid) - cpu) / len(lat) * 1e3
    print(_row("1 client", _pct(lat, 50), _pct(lat, 99), len(lat) / wall, api_ms))

    cpu, own = cpu_seconds(pid), time.process_time()
    lat, wall = asyncio.run(drive(base, paths, args.clients, args.requests))
    api_ms = (cpu_seconds(pid) - cpu) / len(lat) * 1e3
    client_ms = (time.process_time() - own) / len(lat) * 1e3
    extra = f"  httpx CPU {client_ms:5.2f} ms/req"
    mode = f"{args.clients} httpx"
    print(_row(mode, _pct(lat, 50), _pct(lat, 99), len(lat) / wall, api_ms, extra))

    if args.wrk_seconds and shutil.which("wrk"):
        cpu = cpu_seconds(pid)
        found = run_wrk(base, paths, args.clients, args.wrk_seconds)
        settle(pid)  # the requests still in flight when wrk stopped are not in its count
        api_ms = (cpu_seconds(pid) - cpu) / found["n"] * 1e3
        mode = f"{args.clients} wrk"
        print(_row(mode, found["p50"], found["p99"], found["rps"], api_ms))


def run_backend(label: str, url: str, args: argparse.Namespace) -> None:
    ensure_schema(url)
    started = time.perf_counter()
    small = fill_study(url, "small", 100, seed=1)
    big = fill_study(url, "large", args.trials, seed=2)
    print(f"\n{label}: filled 100 + {args.trials} trials in {time.perf_counter() - started:.1f} s")
    if not (args.wrk_seconds and shutil.which("wrk")):
        print("  (wrk not installed or --wrk-seconds 0: httpx clients only)")
    with serve(url) as (base, pid):
        httpx.get(f"{base}/studies/{small}", timeout=60)  # the first request builds lazy state
        rss = {"start": rss_mib(pid)}
        print(f"  API RSS after start        {rss['start']:7.1f} MiB")
        for name, study_id, n in (("small", small, 100), ("large", big, args.trials)):
            # The summary is computed once per set of complete trials and cached: time that cold
            # request alone, then measure the steady state.
            started = time.perf_counter()
            httpx.get(f"{base}/studies/{study_id}/summary", timeout=900).raise_for_status()
            cold = time.perf_counter() - started
            line = f"  {name:5s} ({n:>5} trials) cold GET /summary {cold:7.2f} s"
            print(f"{line}  [load {load_average()}]")
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
                print(f"  {name:5s} ({n:>5} trials) {endpoint}")
                measure(base, pid, paths, args)
            rss[name] = rss_mib(pid)
            print(f"  API RSS after {name:5s} study {rss[name]:7.1f} MiB")
        growth = rss["large"] - rss["small"]
        print(f"  API RSS large - small      {growth:+7.1f} MiB  ({args.trials} vs 100 trials)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint and study")
    parser.add_argument("--sequential", type=int, default=200, help="one-client requests")
    parser.add_argument(
        "--wrk-seconds", type=int, default=10, help="seconds of wrk per endpoint (0: no wrk)"
    )
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--open-loop",
        action="store_true",
        help="fixed-rate mixed reads (study, page, summary) on the large study instead",
    )
    parser.add_argument("--rate", type=float, default=100, help="open loop: requests/s")
    parser.add_argument("--seconds", type=float, default=10, help="open loop: seconds per rate")
    parser.add_argument(
        "--ramp",
        type=float,
        nargs="*",
        default=[25, 50, 75, 100, 150, 200, 300, 400],
        help="open loop: rates tried lowest first until p99 crosses --goal-ms",
    )
    parser.add_argument("--goal-ms", type=float, default=50, help="open loop: the p99 goal")
    args = parser.parse_args(argv)
    run = run_open_loop if args.open_loop else run_backend
    if args.open_loop:
        print(f"{os.cpu_count()} cpus, open loop: {args.rate:.0f} req/s, ramp {args.ramp}")
    else:
        print(
            f"{os.cpu_count()} cpus, {args.clients} clients, {args.requests} requests per endpoint"
        )
    for backend in args.backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="studyd-api-load-") as tmp:
                run("sqlite", f"sqlite:///{tmp}/api.db", args)
        else:
            admin = os.environ.get("STUDYD_TEST_POSTGRES_URL")
            if not admin:
                print("\npostgresql: skipped (set STUDYD_TEST_POSTGRES_URL)")
                continue
            with throwaway_database(admin, prefix="studyd_api_load") as url:
                run("postgresql", url, args)


if __name__ == "__main__":
    main()
