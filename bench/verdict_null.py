"""How often the verdict claims a difference that is not there, and how often it finds one that is.

    python -m bench.verdict_null [--studies 2000] [--seed 0] [--sequential]

Synthetic studies shaped like studyd's: each variant has 1–30 configurations, each found once by
the search (at the search seed) and then trained again on the same 3–5 fresh replicate seeds
(`replicate: true`), as `repeats:` does. A value is a base accuracy + a seed effect shared by
every configuration (what pairing removes) + the trial's own noise, rounded to a validation set
of 359 images, so ties and identical paired differences occur as they do on `digits`.

Null studies have no true difference anywhere: every sentence that names a better variant or
placement is a false claim. Effect studies give `standard` a real +2-point advantage: the
verdict should name it best. The test (tests/studyd/test_verdict_null.py) runs this module.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from studyd.analysis.verdict import rank_groups, verdict_sentence

VARIANTS = (
    "none",
    "standard",
    "gaussian",
    "vanilla",
    "dropconnect",
    "standout",
    "rdrop",
    "multisample",
)
PLACEMENTS = ("input", "hidden", "both")
# The sentences that claim nothing (verdict_sentence's forms, before and after issue 16).
NO_CLAIM = ("No evidence", "Not enough seed replicates", "Only ")


@dataclass(frozen=True)
class Shape:
    n_configs: tuple[int, ...]  # per variant, `none` first
    n_seeds: int  # replicate seeds per configuration (besides the search seed)


@dataclass(frozen=True)
class Noise:
    trial_sd: float = 0.01  # one trial's own noise (accuracy units)
    seed_sd: float = 0.01  # a seed's effect on every configuration
    n_val: int | None = 359  # validation images: values are multiples of 1/n_val


def random_shape(rng: random.Random) -> Shape:
    """2–8 variants; `none` has few configurations (no dropout knobs), the others 1–30."""
    others = [rng.choice([1, 2, 3, 5, 10, 20, 30]) for _ in range(rng.randint(1, 7))]
    return Shape((rng.randint(1, 3), *others), rng.randint(3, 5))


def fixed_shape(configs: Sequence[int], seeds: int) -> Callable[[random.Random], Shape]:
    return lambda _rng: Shape(tuple(configs), seeds)


def synthetic_study(
    shape: Shape,
    rng: random.Random,
    *,
    effect: float = 0.0,
    noise: Noise = Noise(),
    base: float = 0.9,
) -> list[dict[str, Any]]:
    """Records as `analysis.evidence.verdict_record` makes them; `standard` gets `effect`."""
    seed_effect = [rng.gauss(0, noise.seed_sd) for _ in range(shape.n_seeds + 1)]

    def value(level: float, seed: int) -> float:
        x = level + seed_effect[seed] + rng.gauss(0, noise.trial_sd)
        return x if noise.n_val is None else round(x * noise.n_val) / noise.n_val

    records = []
    for variant, n_configs in zip(VARIANTS, shape.n_configs, strict=False):
        level = base + (effect if variant == "standard" else 0.0)
        for c in range(n_configs):
            placement = "none" if variant == "none" else rng.choice(PLACEMENTS)
            key = f"{variant}-{c}"
            for seed in range(shape.n_seeds + 1):
                records.append(
                    {
                        "variant": variant,
                        "placement": placement,
                        "config_key": key,
                        "seed": seed,
                        "value": value(level, seed),
                        "replicate": seed > 0,
                    }
                )
    return records


def makes_claim(sentence: str) -> bool:
    return not sentence.startswith(NO_CLAIM)


def verdicts(records: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The variant and the placement verdict sentences."""
    return (
        verdict_sentence(rank_groups(records, by="variant"), kind="variant"),
        verdict_sentence(rank_groups(records, by="placement"), kind="placement"),
    )


@dataclass(frozen=True)
class Rates:
    n: int
    variant_claims: int
    placement_claims: int
    either: int

    def line(self, label: str) -> str:
        return (
            f"{label:<34} n={self.n:5d}  variant {100 * self.variant_claims / self.n:5.1f} %  "
            f"placement {100 * self.placement_claims / self.n:5.1f} %  "
            f"either {100 * self.either / self.n:5.1f} %"
        )


def claim_rates(
    n: int,
    seed: int,
    shape: Callable[[random.Random], Shape] = random_shape,
    *,
    effect: float = 0.0,
    noise: Noise = Noise(),
) -> Rates:
    """How many of `n` synthetic studies' verdicts claim a difference."""
    rng = random.Random(seed)
    v = p = either = 0
    for _ in range(n):
        by_variant, by_placement = verdicts(
            synthetic_study(shape(rng), rng, effect=effect, noise=noise)
        )
        v += makes_claim(by_variant)
        p += makes_claim(by_placement)
        either += makes_claim(by_variant) or makes_claim(by_placement)
    return Rates(n, v, p, either)


def binomial_tolerance(rate: float, n: int, z: float = 3.0) -> float:
    return z * math.sqrt(rate * (1 - rate) / n)


def found_rate(n: int, seed: int, shape: Callable[[random.Random], Shape], noise: Noise) -> float:
    """Share of effect studies (+2 points for `standard`) whose verdict names standard best."""
    rng = random.Random(seed)
    hits = 0
    for _ in range(n):
        records = synthetic_study(shape(rng), rng, effect=0.02, noise=noise)
        hits += verdict_sentence(rank_groups(records)).startswith("standard is best")
    return hits / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="also: seeds added until decided (bench.verdict_sequential)",
    )
    args = parser.parse_args()
    n, seed = args.studies, args.seed
    started = time.perf_counter()
    tolerance = 100 * binomial_tolerance(0.05, n)
    print(f"false claims on null studies (nominal 5 %; 3σ binomial ±{tolerance:.1f})")
    print(claim_rates(n, seed).line("2-8 variants, 1-30 configs, 3-5 seeds"))
    exact = Noise(n_val=None)
    print(claim_rates(n, seed, noise=exact).line("  the same, values not rounded"))
    for configs in (1, 10, 30):
        rates = claim_rates(n // 2, seed, fixed_shape((1, configs), 3))
        print(rates.line(f"none 1 config, standard {configs}, 3 seeds"))
    print(
        claim_rates(n // 2, seed, fixed_shape((1, 1), 1)).line("none vs standard, 1 seed + search")
    )
    same = Noise(trial_sd=0.001)  # identical paired differences are common
    for seeds in (1, 2):
        rates = claim_rates(n // 2, seed, fixed_shape((1, 1), seeds), noise=same)
        print(rates.line(f"  {seeds} seed(s) + search, trial sd 0.1 pt"))
    clear = Noise(trial_sd=0.005)
    print(
        f"found: standard +2 points named best (trial sd {100 * clear.trial_sd} points, seed sd 1)"
    )
    for variants in (2, 4, 8):
        for seeds in (3, 5):
            shape = fixed_shape((1,) + (10,) * (variants - 1), seeds)
            rate = found_rate(n // 4, seed, shape, clear)
            print(f"  {variants} variants, 10 configs each, {seeds} seeds: {100 * rate:5.1f} %")
    print(f"({time.perf_counter() - started:.1f} s)")
    if args.sequential:
        from bench.verdict_sequential import main as sequential

        sequential(["--paths", str(2 * n), "--seed", str(seed)])


if __name__ == "__main__":
    main()
