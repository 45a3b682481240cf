"""Reproduce the seeds' dropout claims, paired by seed, each with a 95 % CI and a verdict.

    python -m bench.seeds [--quick] [--json] [--seeds N] [--device auto|cpu|cuda:N]

The claims (settings in bench/seed_claims.py; all training through studyd's own path,
`models.batched.train_batched` or `models.training.train_model`):

- cs231n, on 500 examples of `mnist1d` (digits is too easy: 94 % validation from 500 examples,
  so there is nothing for dropout to fix), 40-500-10, Adam 1e-3: without dropout the training
  set is memorised; dropout at p = .75 raises validation accuracy and shrinks the train−val gap.
- d2l, on `mnist-5k` (3000 training images): 784-256-256-10, dropout .2/.5, SGD lr .5, batch 256:
  dropout shrinks the train−test gap at comparable test accuracy.
- vanilla vs inverted scaling: both keep the training output's expectation equal to the test
  output; trained nets agree in test accuracy once vanilla applies its 1−p at test; inverted
  dropout adds no operation at test time.
- Multi-Sample dropout (K = 4 masks through the head): reaches a training loss in fewer epochs
  than one mask at the same rate, and generalises better.
- R-Dropout (two passes + α·symmetric KL, 784-256-10 on mnist-5k, at the seed's λ = 0.5 at
  batch 64, i.e. α = 64 on the paper's scale, and at studyd's default α = 1): the two passes
  disagree less than under plain dropout, and test accuracy is higher.
- Gaussian dropout (x·ε, ε ~ N(1, σ²), no noise at test): keeps the expectation; prevents
  overfitting (shrinks the gap) at the seed's σ = 0.1 and at σ² = p/(1−p), p = .75.

The rule, fixed before any result was seen: each claim is measured as one effect per seed,
`effect_s = metric(arm A, seed s) − metric(arm B, seed s)`, signed so that positive is the
claimed direction; the arms of a seed share initial weights and data order. The 95 % CI is
mean ± t(0.975, n−1)·sd/√n over the n seeds. A directional claim is REPRODUCED when the whole
CI lies above its bound (0, or 99 points for "memorised"); an equivalence claim ("same",
"comparable", "costs nothing") when the whole CI lies within ±its margin (1 accuracy point for
accuracies, 0.5 % for expectations, 0 ops for test-time cost). Anything else is NOT
REPRODUCED — including a claim whose effect points the claimed way with a CI that reaches 0.
No setting was tuned after seeing a verdict. Two changes followed a first `--quick` run, neither
toward a verdict: one torch thread (time only), and R-Dropout at the seed's own weight (α = 64)
beside the α = 1 it had used, which is still reported. An arm that never reaches Multi-Sample's
target loss counts as epochs + 1, so that effect is then a lower bound.

`--quick` (3 seeds, fewer epochs) checks the machinery in under 3 minutes on 2 CPU cores; its
CIs are wide and its verdicts are not the README's. `--json` prints one object per claim.
One torch thread by default: these nets are small, and a second thread mostly spins, which on
a busy machine cost six times the CPU time of one thread (226 s vs 35 s for --quick).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from scipy import stats

from bench.seed_claims import Budget, Claim, cs231n, d2l, rdrop, scaling
from models.data import load_dataset
from models.training import resolve_device

FULL = {"seeds": 5, "cs231n_epochs": 200, "d2l_epochs": 100, "rdrop_epochs": 30}
QUICK = {"seeds": 3, "cs231n_epochs": 60, "d2l_epochs": 20, "rdrop_epochs": 6}


@dataclass(frozen=True)
class Verdict:
    """A claim judged by the module's rule."""

    claim: str
    effect_name: str
    unit: str
    effect: float
    ci_low: float
    ci_high: float
    sd: float
    n_seeds: int
    rule: str
    reproduced: bool
    numbers: str


def judge(claim: Claim) -> Verdict:
    """Mean paired effect, its Student-t 95 % CI over seeds, and the pre-stated rule's verdict."""
    values = claim.effects
    n = len(values)
    if n < 2:
        raise ValueError(f"{claim.claim}: a CI needs at least 2 seeds, got {n}")
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    low, high = float(mean - half), float(mean + half)  # plain floats: the JSON output
    if claim.within is not None:
        rule = f"CI within ±{claim.within:g}"
        ok = bool(-claim.within <= low and high <= claim.within)
    else:
        rule = f"CI > {claim.above:g}"
        ok = bool(low > claim.above)
    return Verdict(
        claim.claim, claim.effect, claim.unit, mean, low, high, sd, n, rule, ok, claim.numbers
    )


def run_claims(budget: Budget) -> list[Claim]:
    """Every claim, grouped by the data it trains on."""
    mnist1d = load_dataset("mnist1d", data_dir="data", train_subset=500, download=False)
    mnist5k = load_dataset("mnist-5k", data_dir="data", download=False)
    return [
        *cs231n(mnist1d, budget),
        *d2l(mnist5k, budget),
        *scaling(budget),
        *rdrop(mnist5k, budget),
    ]


def run(budget: Budget) -> list[Verdict]:
    """Every claim trained under `budget` and judged by the module's rule."""
    return [judge(c) for c in run_claims(budget)]


def as_json(verdicts: list[Verdict]) -> str:
    """What `--json` prints: a JSON list, one object per claim (`Verdict`'s fields)."""
    return json.dumps([asdict(v) for v in verdicts], indent=1, ensure_ascii=False)


def print_table(verdicts: list[Verdict]) -> None:
    print("| claim | effect (unit) | mean | 95 % CI | rule | verdict |")
    print("|---|---|---:|---|---|---|")
    for v in verdicts:
        verdict = "REPRODUCED" if v.reproduced else "NOT REPRODUCED"
        print(
            f"| {v.claim} | {v.effect_name} ({v.unit}) | {v.effect:+.2f} | "
            f"[{v.ci_low:+.2f}, {v.ci_high:+.2f}] | {v.rule} | {verdict} |"
        )
    print()
    for v in verdicts:
        print(f"- {v.claim.split(':')[0]}: {v.numbers} (n={v.n_seeds}, sd {v.sd:.2f} {v.unit})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, fewer epochs (< 3 min)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of claims")
    parser.add_argument("--seeds", type=int, help="seeds 0…N−1 (default 5, quick 3)")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = dict(QUICK if args.quick else FULL)
    n_seeds = args.seeds or sizes["seeds"]
    del sizes["seeds"]
    device = str(resolve_device(args.device))
    budget = Budget(seeds=tuple(range(n_seeds)), device=device, **sizes)
    wall, cpu = time.perf_counter(), time.process_time()
    verdicts = run(budget)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if args.json:
        print(as_json(verdicts))
        return
    print(
        f"python -m bench.seeds{' --quick' if args.quick else ''}: seeds 0–{n_seeds - 1}, "
        f"{budget}, {args.threads} torch thread(s); {wall:.0f} s wall, {cpu:.0f} s CPU "
        f"(user+sys) on {device}\n"
    )
    print_table(verdicts)


if __name__ == "__main__":
    main()
