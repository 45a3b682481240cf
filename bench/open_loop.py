"""Open-loop load: requests sent at a fixed rate whatever the server's pace (`bench.api_load
--open-loop`).

Closed-loop clients wait for each answer before sending again, so a slow server is sent less
and its queueing hides (coordinated omission). Here request i is due at `start + i / rate`;
each is sent on its own task when due, and its latency counts from when it was due, so time
spent waiting behind earlier requests (in the client or the server) is in the figure. A run
"falls behind" when its requests could not even be sent on time (the client is the bottleneck,
and the figures say nothing of the server) or when the answers stop keeping up with the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from bench.api_server import cpu_seconds, load_average, serve, settle
from bench.study_fill import fill_study
from storage.migrate import ensure_schema

# A request sent this late after it was due means the client, not the server, set the pace.
SEND_LAG_LIMIT_S = 0.010
# Answers per second below this share of the rate: the server is not keeping up.
KEEP_UP_SHARE = 0.95


@dataclass(frozen=True)
class OpenLoopRun:
    """One run at a fixed rate: latencies (s, from when each request was due) per path kind."""

    rate: float
    seconds: float
    latencies: dict[str, list[float]]
    send_lag_p99: float
    answered_per_s: float
    errors: int

    @property
    def all_latencies(self) -> list[float]:
        return [x for xs in self.latencies.values() for x in xs]

    def p(self, q: int, kind: str | None = None) -> float:
        xs = self.all_latencies if kind is None else self.latencies[kind]
        return percentile(xs, q)

    @property
    def fell_behind(self) -> bool:
        return (
            self.send_lag_p99 > SEND_LAG_LIMIT_S
            or self.answered_per_s < KEEP_UP_SHARE * self.rate
            or self.errors > 0
        )


def percentile(xs: Sequence[float], q: int) -> float:
    if not xs:
        return float("nan")
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


async def _run(
    base: str, schedule: Sequence[tuple[str, str]], rate: float
) -> tuple[dict[str, list[float]], list[float], float, int]:
    latencies: dict[str, list[float]] = {kind: [] for kind, _ in schedule}
    lags: list[float] = []
    errors = 0
    # Enough connections that no request waits for one: the server, not the pool, must queue.
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)

    async def one(http: httpx.AsyncClient, kind: str, path: str, due: float) -> None:
        nonlocal errors
        lags.append(time.perf_counter() - due)
        try:
            response = await http.get(path)
            errors += response.status_code != 200
        except httpx.HTTPError:
            errors += 1
            return
        latencies[kind].append(time.perf_counter() - due)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        tasks = []
        start = time.perf_counter()
        for i, (kind, path) in enumerate(schedule):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, kind, path, due)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return latencies, lags, wall, errors


def open_loop(base: str, paths: dict[str, list[str]], rate: float, seconds: float) -> OpenLoopRun:
    """`rate` requests/s for `seconds`, cycling through the kinds of `paths` in turn (each kind's
    own paths in turn too): an even mix of kinds at any rate."""
    n = max(1, round(rate * seconds))
    kinds = list(paths)
    schedule = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        options = paths[kind]
        schedule.append((kind, options[(i // len(kinds)) % len(options)]))
    latencies, lags, wall, errors = asyncio.run(_run(base, schedule, rate))
    answered = sum(len(xs) for xs in latencies.values())
    return OpenLoopRun(
        rate=rate,
        seconds=seconds,
        latencies=latencies,
        send_lag_p99=percentile(lags, 99),
        answered_per_s=answered / wall,
        errors=errors,
    )


# --- the bench's open-loop mode: the goal rate, then the ramp -------------------------------


def _mixed_paths(study_id: int, n: int) -> dict[str, list[str]]:
    """The open loop's reads, in turn: the study, a page of 100 trials, the summary."""
    rng = random.Random(0)
    return {
        "study": [f"/studies/{study_id}"],
        "page": [
            f"/studies/{study_id}/trials?limit=100&offset={rng.randrange(0, n, 100)}"
            for _ in range(50)
        ],
        "summary": [f"/studies/{study_id}/summary"],
    }


def _open_loop_row(run: OpenLoopRun, api_ms: float) -> str:
    kinds = "  ".join(f"{k} {run.p(99, k) * 1e3:6.1f}" for k in run.latencies)
    behind = "  FELL BEHIND" if run.fell_behind else ""
    return (
        f"  {run.rate:6.0f} req/s  p50 {run.p(50) * 1e3:6.1f} ms  p99 {run.p(99) * 1e3:7.1f} ms"
        f"  (p99 {kinds})  answered {run.answered_per_s:6.1f}/s  send lag p99"
        f" {run.send_lag_p99 * 1e3:5.1f} ms  API CPU {api_ms:5.2f} ms/req"
        f"  [load {load_average()}]{behind}"
    )


def run_open_loop(label: str, url: str, args: argparse.Namespace) -> None:
    """`--rate` requests/s of mixed reads on one study of `--trials` (the goal), then the ramp:
    each rate of `--ramp`, lowest first, until p99 crosses `--goal-ms` or the run falls behind."""
    ensure_schema(url)
    started = time.perf_counter()
    study_id = fill_study(url, "large", args.trials, seed=2)
    print(f"\n{label}: filled {args.trials} trials in {time.perf_counter() - started:.1f} s")
    with serve(url) as (base, pid):
        httpx.get(f"{base}/studies/{study_id}/summary", timeout=900).raise_for_status()
        paths = _mixed_paths(study_id, args.trials)
        # Warm: connections, lazy imports and every path read once (all 50 pages: a server up for
        # a while has read them; 40 requests left most pages cold for the first measured run).
        open_loop(base, paths, 25, 3 * max(len(p) for p in paths.values()) / 25)

        def measured(rate: float) -> bool:
            settle(pid)
            cpu = cpu_seconds(pid)
            run = open_loop(base, paths, rate, args.seconds)
            api_ms = (cpu_seconds(pid) - cpu) / max(1, len(run.all_latencies)) * 1e3
            print(_open_loop_row(run, api_ms))
            return not run.fell_behind and run.p(99) * 1e3 <= args.goal_ms

        print(f"  goal: p99 < {args.goal_ms:.0f} ms at {args.rate:.0f} req/s")
        met = measured(args.rate)
        print(f"  {label}: goal {'met' if met else 'missed'}; ramp:")
        passed: float | None = None
        for rate in sorted(args.ramp):
            if not measured(rate):
                break
            passed = rate
        shown = "none of the rates" if passed is None else f"{passed:.0f} req/s"
        print(f"  {label}: saturation (highest rate with p99 < {args.goal_ms:.0f} ms): {shown}")
