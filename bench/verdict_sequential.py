"""Seeds until decided: the anytime-valid rule's false claims under optional stopping, and the
seeds it spends for 80 % power on a real 1- and 2-point difference against a fixed `repeats: N`.

    python -m bench.verdict_sequential [--paths 4000] [--seed 0]

One comparison (the leader's chosen configuration against a rival's), as bench/verdict_null.py
models trials: per seed, each value is base + the seed's effect (shared: pairing removes it) +
the trial's own noise (sd 1 point), rounded to a 359-image validation set; the leader is better
by `effect`. Paired differences therefore have sd ≈ 1.4 points.
- *sequential* (`analysis.anytime`): from 3 seeds, one seed at a time, stop as soon as the
  confidence sequence excludes 0 (or, with a margin, lies inside ±margin), or at the cap;
- *fixed N*: the paired t-test once, at N seeds (what `repeats: N` does);
- *peeking*: the fixed-N t-test looked at after every seed — the error the sequence avoids.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats

from studyd.analysis.anytime import DEFAULT_G, t_boundary

ALPHA = 0.05
START = 3
N_VAL = 359
TRIAL_SD = 0.01


def paired_paths(n_paths: int, n_seeds: int, effect: float, seed: int) -> np.ndarray:
    """Leader − rival per seed, both rounded to N_VAL images (the seed effect cancels)."""
    rng = np.random.default_rng(seed)
    shared = 0.9 + rng.normal(0, 0.01, (n_paths, n_seeds))
    leader = np.round((shared + effect + rng.normal(0, TRIAL_SD, shared.shape)) * N_VAL)
    rival = np.round((shared + rng.normal(0, TRIAL_SD, shared.shape)) * N_VAL)
    return (leader - rival) / N_VAL


def _prefix(paths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.arange(1, paths.shape[1] + 1)
    mean = paths.cumsum(axis=1) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.clip((paths**2).cumsum(axis=1) - n * mean**2, 0, None) / (n - 1)
    return mean, np.sqrt(var)


def _half_widths(sd: np.ndarray, critical: list[float | None]) -> np.ndarray:
    n = np.arange(1, sd.shape[1] + 1)
    bound = np.array([np.inf if c is None else c for c in critical])
    with np.errstate(invalid="ignore"):
        half = bound * sd / np.sqrt(n)
    return np.where(sd > 0, half, np.inf)


@dataclass(frozen=True)
class Stops:
    """Per path: the seed count at which it stopped, and what it said there."""

    n: np.ndarray
    better: np.ndarray  # claimed leader better
    worse: np.ndarray  # claimed leader worse
    equivalent: np.ndarray


def sequential_stops(paths: np.ndarray, cap: int, margin: float = 0.0) -> Stops:
    """Stop at the first n ≥ START where the confidence sequence decides, else at `cap`."""
    paths = paths[:, :cap]
    mean, sd = _prefix(paths)
    critical = [t_boundary(n, ALPHA, DEFAULT_G) for n in range(1, cap + 1)]
    half = _half_widths(sd, critical)
    low, high = mean - half, mean + half
    better, worse = low > 0, high < 0
    equivalent = (margin > 0) & (low > -margin) & (high < margin) & ~better & ~worse
    decided = better | worse | equivalent
    decided[:, : START - 1] = False
    stop = np.where(decided.any(axis=1), decided.argmax(axis=1), cap - 1)
    rows = np.arange(len(paths))
    return Stops(stop + 1, better[rows, stop], worse[rows, stop], equivalent[rows, stop])


def fixed_claims(paths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The paired t-test once at n seeds: (claims leader better, claims leader worse)."""
    mean, sd = _prefix(paths[:, :n])
    spread = sd[:, -1]
    # Identical differences on every seed: no error estimate, no claim (as the verdict does).
    t = mean[:, -1] / np.where(spread > 0, spread / math.sqrt(n), np.inf)
    critical = stats.t.ppf(1 - ALPHA / 2, n - 1)
    return t > critical, t < -critical


def peeking_claims(paths: np.ndarray, cap: int) -> np.ndarray:
    """The fixed-n t-test looked at after every seed from START: ever claims anything."""
    mean, sd = _prefix(paths[:, :cap])
    critical = [None] + [stats.t.ppf(1 - ALPHA / 2, n - 1) for n in range(2, cap + 1)]
    claims = np.abs(mean) > _half_widths(sd, critical)
    return claims[:, START - 1 :].any(axis=1)


def fixed_n_for_power(paths: np.ndarray, power: float = 0.8) -> int | None:
    """Smallest N whose one look finds the leader better in ≥ `power` of the paths."""
    for n in range(START, paths.shape[1] + 1):
        if fixed_claims(paths, n)[0].mean() >= power:
            return n
    return None


def cap_for_power(paths: np.ndarray, power: float = 0.8) -> int | None:
    """Smallest cap at which the sequential rule has found the leader better in ≥ `power`."""
    for cap in range(START, paths.shape[1] + 1):
        if sequential_stops(paths, cap).better.mean() >= power:
            return cap
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    n, seed = args.paths, args.seed
    print(f"null (no difference), {n} paths, α = {ALPHA}: share claiming a difference")
    null = paired_paths(n, 60, 0.0, seed)
    for cap in (10, 30, 60):
        stops = sequential_stops(null, cap)
        better, worse = fixed_claims(null, cap)
        print(
            f"  up to {cap:2d} seeds: sequential {100 * (stops.better | stops.worse).mean():4.1f} %"
            f" (mean {stops.n.mean():4.1f} seeds) | fixed N={cap} "
            f"{100 * (better | worse).mean():4.1f} % | t-test peeking after every seed "
            f"{100 * peeking_claims(null, cap).mean():4.1f} %"
        )
    margin = 0.01
    stops = sequential_stops(null, 60, margin=margin)
    print(
        f"  with a ±{100 * margin:g}-point margin, cap 60: {100 * stops.equivalent.mean():4.1f} % "
        f"ruled equivalent, mean {stops.n.mean():4.1f} seeds"
    )
    print("real difference: seeds for 80 % power (leader shown better)")
    for effect in (0.01, 0.02):
        paths = paired_paths(n, 120, effect, seed + 1)
        fixed = fixed_n_for_power(paths)
        cap = cap_for_power(paths)
        line = f"  {100 * effect:g} point(s): fixed repeats N = {fixed}"
        if cap is not None:
            stops = sequential_stops(paths, cap)
            line += (
                f"; sequential cap {cap}: mean {stops.n.mean():4.1f} seeds, median "
                f"{np.median(stops.n):g}, power {100 * stops.better.mean():4.1f} %"
            )
        else:
            line += "; sequential: not 80 % within 120 seeds"
        print(line)
    print(f"({time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
