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

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

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
