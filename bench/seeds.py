"""Reproduce the seeds' dropout claims: paired by seed, seeds added until the rule decides.

    python -m bench.seeds [--quick] [--json] [--device auto|cpu|cuda:N] [--threads N]
                          [--looks 4,6,8,12,16] [--experiments cs231n,scaling,…]

Each claim's experiment is designed before its run; its docstring says how (bench/seed_claims.py:
cs231n, d2l, arithmetic; bench/seed_tuned.py: vanilla vs inverted scaling, R-Dropout). All
training goes through studyd's own path (`models.batched.train_batched`,
`models.training.train_model`; `train_rescaled` is train_model's loop with a rescaled head).

The rule (bench/seed_rule.py), fixed before any result was seen: one effect per seed,
`effect_s = metric(arm A, seed s) − metric(arm B, seed s)`, signed so that positive is the
claimed direction; the arms of a seed share initial weights and data order. A pilot of the
first look's seeds estimates each claim's paired sd; seeds are then added look by look
(`Looks.sizes`) while any claim of the experiment is undecided, up to the last look. Each look's
interval is a t-interval at level 1 − α/L (Bonferroni over the L planned looks), so stopping
when it decides keeps the overall error ≤ α = 5 %. Every claim ends REPRODUCED, REFUTED (the
interval on the other side of the bound, or wholly outside the margin) or UNDECIDED with the
seeds its mean and sd say it would need. A Multi-Sample arm that never reaches its target loss
is censored (epochs + 1, a bound); when no arm reaches it in any seed the claim is UNDECIDED
and named CENSORED.

`--quick` (looks at 2 and 3 seeds, short training, small grids) tests the machinery, not the
verdicts: every quick verdict is marked so. `--json` prints one object per claim. One torch
thread by default: these nets are small, and a second thread mostly spins on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from bench.seed_claims import Budget, Claim, Experiment, arithmetic, cs231n, d2l
from bench.seed_rule import Looks, Sequential, run_looks
from bench.seed_tuned import rdrop, scaling
from models.data import DatasetSplits, load_dataset
from models.training import resolve_device

FULL = {
    "looks": Looks((4, 6, 8, 12, 16)),
    "cs231n_epochs": 200,
    "d2l_epochs": 10,
    "rdrop_epochs": 30,
}
QUICK = {
    "looks": Looks((2, 3)),
    "cs231n_epochs": 40,
    "d2l_epochs": 4,
    "rdrop_epochs": 3,
    "selection_seeds": (1000,),
    "lr_grid": (1e-3, 1e-2),
    "alpha_grid": (0.3, 3.0),
}


@dataclass(frozen=True)
class Verdict:
    """A claim judged by the rule: what `--json` prints for it."""

    label: str
    claim: str
    effect_name: str
    unit: str
    effect: float
    ci_low: float
    ci_high: float
    level: float
    sd: float
    n_seeds: int
    rule: str
    verdict: str
    seeds_needed: int | None
    quick: bool
    reproduced: bool
    censored: int
    numbers: str


def judge(claim: Claim, looks: Looks, quick: bool = False) -> Verdict:
    """The claim run through the looks; a blind (all-censored) claim is UNDECIDED."""
    seq: Sequential = run_looks(claim.effects, looks, claim.above, claim.within)
    decision, needed = seq.decision, seq.seeds_needed
    if claim.blind:
        decision, needed = "UNDECIDED", None
    rule = f"CI within ±{claim.within:g}" if claim.within is not None else f"CI > {claim.above:g}"
    ci = seq.ci
    return Verdict(
        claim.label,
        claim.claim,
        claim.effect,
        claim.unit,
        ci.mean,
        ci.low,
        ci.high,
        looks.level,
        ci.sd,
        ci.n,
        rule,
        decision,
        needed if decision == "UNDECIDED" else None,
        quick,
        decision == "REPRODUCED",
        claim.censored,
        claim.numbers,
    )


def _settled(claim: Claim, looks: Looks) -> bool:
    # A blind claim never decides: more seeds cannot help it, so it does not hold the others.
    return claim.blind or run_looks(claim.effects, looks, claim.above, claim.within).decision != (
        "UNDECIDED"
    )


def run_experiment(experiment: Experiment, looks: Looks) -> list[Claim]:
    """Train look by look (seeds 0, 1, …) until every claim is settled or the last look.

    A claim decided at an earlier look than its experiment's last is read again from the seeds
    up to that look, so its numbers and censored count describe the seeds its verdict used.
    """
    arms: dict[str, list] = {}
    done = 0
    for n in looks.sizes:
        for name, values in experiment.train(list(range(done, n))).items():
            arms.setdefault(name, []).extend(values)
        done = n
        claims = experiment.claims(arms)
        if all(_settled(c, looks) for c in claims):
            break
    out = []
    for claim in claims:
        used = run_looks(claim.effects, looks, claim.above, claim.within).ci.n
        if used < done:
            first = {name: values[:used] for name, values in arms.items()}
            claim = next(c for c in experiment.claims(first) if c.label == claim.label)
        out.append(claim)
    return out


def _mnist1d(subset: int | None = None) -> DatasetSplits:
    return load_dataset("mnist1d", data_dir="data", train_subset=subset, download=False)


# Each experiment and how to build it (its data loaded, its validation choice made, on demand).
EXPERIMENTS: dict[str, Callable[[Budget], Experiment]] = {
    "cs231n": lambda b: cs231n(_mnist1d(500), b),
    "scaling": lambda b: scaling(_mnist1d(500), b),
    "arithmetic": arithmetic,
    "d2l": lambda b: d2l(_mnist1d(), b),
    "rdrop": lambda b: rdrop(load_dataset("mnist-5k", data_dir="data", download=False), b),
}


def run(
    budget: Budget, quick: bool = False, names: Sequence[str] = tuple(EXPERIMENTS)
) -> tuple[list[Verdict], list[Experiment]]:
    """The named experiments (all by default), each run through the looks and judged."""
    exps = [EXPERIMENTS[name](budget) for name in names]
    verdicts = [
        judge(c, budget.looks, quick) for e in exps for c in run_experiment(e, budget.looks)
    ]
    labels = [v.label for v in verdicts]
    assert len(set(labels)) == len(labels), f"claim labels repeat: {labels}"
    return verdicts, exps


def as_json(verdicts: list[Verdict]) -> str:
    """What `--json` prints: a JSON list, one object per claim (`Verdict`'s fields)."""
    return json.dumps([asdict(v) for v in verdicts], indent=1, ensure_ascii=False)


def shown_verdict(v: Verdict) -> str:
    text = v.verdict
    if v.verdict == "UNDECIDED":
        text += f", needs {v.seeds_needed} seeds" if v.seeds_needed else ", no seed count decides"
    if v.censored:
        text += f"; CENSORED in {v.censored} of {v.n_seeds} seeds (the effect is a bound)"
    return f"{text} (quick)" if v.quick else text


def print_table(verdicts: list[Verdict]) -> None:
    level = f"{100 * verdicts[0].level:.2f} %" if verdicts else ""
    print(f"| label | claim | effect (unit) | mean | {level} CI | rule | seeds | verdict |")
    print("|---|---|---|---:|---|---|---:|---|")
    for v in verdicts:
        print(
            f"| {v.label} | {v.claim} | {v.effect_name} ({v.unit}) | {v.effect:+.2f} | "
            f"[{v.ci_low:+.2f}, {v.ci_high:+.2f}] | {v.rule} | {v.n_seeds} | {shown_verdict(v)} |"
        )
    print()
    for v in verdicts:
        print(f"- {v.label}: {v.numbers} (n={v.n_seeds}, sd {v.sd:.2f} {v.unit})")


QUICK_HEADER = (
    "QUICK RUN: this checks the machinery (training, pairing, the sequential rule, the output), "
    "not the verdicts. Two or three seeds and short training cannot decide these claims; every "
    "verdict below is marked (quick). The verdicts are the full run's: python -m bench.seeds"
)


def _looks(text: str) -> Looks:
    try:
        return Looks(tuple(int(n) for n in text.split(",")))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--looks {text}: {err}") from None


def _names(text: str) -> tuple[str, ...]:
    names = tuple(text.split(","))
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; use {','.join(EXPERIMENTS)}")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="test the machinery (< 3 min)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of claims")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--looks", type=_looks, help="seed counts at each look, e.g. 4,6 (default 4,6,8,12,16)"
    )
    parser.add_argument(
        "--experiments",
        type=_names,
        default=tuple(EXPERIMENTS),
        help=f"comma-separated subset of {','.join(EXPERIMENTS)} (default all)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    sizes = dict(QUICK if args.quick else FULL)
    if args.looks is not None:
        sizes["looks"] = args.looks
    budget = Budget(device=device, **sizes)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    verdicts, exps = run(budget, args.quick, args.experiments)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if args.json:
        print(as_json(verdicts))
        return
    if args.quick:
        print(QUICK_HEADER + "\n")
    chosen = "; ".join(f"{k} {v:g}" for e in exps for k, v in e.chosen.items())
    command = " ".join(["python -m bench.seeds", *(sys.argv[1:] if argv is None else argv)])
    print(
        f"{command}: {budget.describe()}; "
        f"chosen on validation: {chosen}; {args.threads} torch thread(s) on {device}; "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU; load average {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end\n"
    )
    print_table(verdicts)


if __name__ == "__main__":
    main()
