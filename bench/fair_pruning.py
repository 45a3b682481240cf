"""Is the default pruner fair to every variant? Each variant's best with a pruner vs without one.

    python -m bench.fair_pruning [--spaces shootout digits cancer] [--seeds 0 1 2 3 4 5]
                                 [--pruners median strat:s=2:w=0.25 ...] [--cache FILE]

Per (space, seed) the same configurations (drawn by Optuna's random sampler from the spec's
space with that seed, trained with that seed) are trained to the end once, their validation
curves kept (and cached in `--cache`); each pruner is then replayed over those curves in the
order the configurations were drawn, one worker's way: a trial reports its epochs one by one
and stops where the real pruner (Optuna's, through the study's ask/tell) says so. A pruned
trial's best never counts (Optuna's best trial is a COMPLETE one). So every pruner sees the same
number of distinct configurations, and a difference in the variant ranking is the pruner's
alone. The random sampler keeps the configurations the pruner's, not a feedback loop's: with
TPE the pruned trials would also move the next proposals (bench/pruners.py measures that path).

Per pruner: how often the variant leader (and Kendall's τ of the whole ranking, variants with no
complete trial ranked last) agrees with the unpruned ranking of the same seed, beside how often
two unpruned seeds agree with each other (the noise floor the issue asks to match); epochs saved
against training every trial to the end; variants left with no complete trial; and which
variants the pruned trials were.

Pruner names: `none`; `median` (Optuna's MedianPruner over all variants, `s`=5 start-up trials,
`w`=1 warm-up epoch: the old default); `strat:...` (studyd's StratifiedPruner over a median
pruner); options `s=N` start-up trials (per variant when stratified), `w=F` warm-up as a fraction
of the epochs (F < 1) or epochs (F ≥ 1), `p=P` a percentile pruner keeping the top P %.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from models.batched import batch_key, train_batched
from models.data import DatasetSplits, load_dataset
from models.training import train_model
from studyd.daemon.fair_pruning import StratifiedPruner
from studyd.daemon.search import suggest_config
from studyd.spec import StudySpec, validate_spec

SHOOTOUT_VARIANTS = [
    "none",
    "standard",
    "vanilla",
    "gaussian",
    "dropconnect",
    "standout",
    "rdrop",
    "multisample",
]
# The shoot-out's space (studyd/examples/shootout.yaml) at 40 epochs instead of 200; digits and
# the breast-cancer study (569 × 30, depth 1–2, width 16–256) at 30 and 40 epochs.
SPACES: dict[str, dict[str, Any]] = {
    "shootout": {
        "trials": 24,
        "dataset": {"name": "mnist1d", "train_subset": 500, "seed": 0},
        "model": {"depth": 1, "width": 500},
        "dropout": {
            "variants": SHOOTOUT_VARIANTS,
            "rate": [0.1, 0.9],
            "placements": ["hidden", "input+hidden"],
            "input_rate": [0.05, 0.3],
            "rdrop_alpha": [0.1, 3.0],
            "multisample_k": [2, 4, 8],
            "standout_alpha": [0.5, 2.0],
            "standout_beta": [-0.1, 0.1],
            "dropconnect_samples": 16,
        },
        "training": {"epochs": 40, "batch_size": 100, "optimizer": "adam", "lr": 1e-3},
    },
    "digits": {
        "trials": 20,
        "dataset": {"name": "digits", "seed": 0},
        "model": {"depth": [1, 2], "width": [16, 256], "log": True},
        "dropout": {
            "variants": ["none", "standard", "gaussian", "rdrop", "multisample"],
            "rate": [0.1, 0.7],
            "placements": ["hidden", "input+hidden", "last_hidden"],
        },
        "training": {"epochs": 30, "batch_size": 64, "optimizer": "adam", "lr": [3e-4, 3e-3]},
    },
    "cancer": {
        "trials": 20,
        "dataset": {"name": "npz:CANCER", "seed": 0},
        "model": {"depth": [1, 2], "width": [16, 256], "log": True},
        "dropout": {
            "variants": ["none", "standard", "gaussian", "dropconnect", "multisample"],
            "rate": [0.1, 0.7],
            "placements": ["hidden", "input+hidden", "last_hidden"],
            "dropconnect_samples": 16,
        },
        "training": {"epochs": 40, "batch_size": 32, "optimizer": "adam", "lr": [3e-4, 3e-3]},
    },
}
DEFAULT_PRUNERS = [
    "none",
    "median",  # the old default: all variants, 5 start-up trials, 1 warm-up epoch
    "median:w=0.15",
    "strat:s=1:w=0.15",  # the default now (studyd.daemon.search.build_pruner)
    "strat:s=1:w=0.1",
    "strat:s=1:w=0.25",
    "strat:s=2:w=0.15",
]


@dataclass
class Trained:
    """One configuration trained to the end: its variant and validation accuracy per epoch."""

    variant: str
    curve: list[float]


@dataclass
class Replay:
    """One pruner over one seed's configurations."""

    best: dict[str, float]  # variant → best final val_acc of its COMPLETE trials
    epochs: int
    pruned: list[str]  # the variant of each pruned trial


def spec_for(space: str, seed: int, data_dir: Path) -> StudySpec:
    raw = {k: v for k, v in SPACES[space].items() if k != "trials"}
    dataset = dict(raw["dataset"])
    dataset["name"] = dataset["name"].replace("CANCER", str(data_dir / "cancer.npz"))
    return validate_spec(
        raw
        | {
            "name": f"fair-{space}-{seed}",
            "dataset": dataset,
            "search": {"sampler": "random", "pruner": "none", "seed": seed},
        }
    )


def write_cancer(data_dir: Path) -> None:
    """scikit-learn's bundled breast-cancer data (569 × 30) as an npz the loader reads."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    np.savez(data_dir / "cancer.npz", x=bunch.data.astype(np.float32), y=bunch.target)


def draw_configs(spec: StudySpec, data: DatasetSplits, seed: int, n: int) -> list[Any]:
    """`n` configurations from the spec's space by a random sampler seeded `seed`."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        model_cfg, train_cfg = suggest_config(study.ask(), spec, data)
        configs.append((model_cfg, train_cfg.model_copy(update={"seed": seed})))
    return configs


def train_all(configs: list[Any], data: DatasetSplits) -> list[Trained]:
    """Every configuration to its last epoch; those of one architecture as one stack."""
    out: list[Trained | None] = [None] * len(configs)
    groups: dict[Any, list[int]] = {}
    for i, (m, t) in enumerate(configs):
        key = batch_key(m, t)
        groups.setdefault(("alone", i) if key is None else key, []).append(i)
    for members in groups.values():
        models = [configs[i][0] for i in members]
        trains = [configs[i][1] for i in members]
        if batch_key(models[0], trains[0]) is None:
            results = [train_model(models[0], trains[0], data, device="cpu")]
        else:
            results = train_batched(models, trains, data, device="cpu")
        for i, result in zip(members, results, strict=True):
            out[i] = Trained(configs[i][0].variant, [m.val_acc for m in result.history])
    return [t for t in out if t is not None]


def build(name: str, epochs: int) -> optuna.pruners.BasePruner:
    kind, *opts = name.split(":")
    if kind == "none":
        return optuna.pruners.NopPruner()
    o = dict(opt.split("=") for opt in opts)
    startup = int(o.get("s", 5))
    w = float(o.get("w", 1))
    warmup = max(1, int(epochs * w)) if w < 1 else int(w)
    if "p" in o:  # keep the top p % (50: the median pruner)
        inner: optuna.pruners.BasePruner = optuna.pruners.PercentilePruner(
            float(o["p"]), n_startup_trials=startup, n_warmup_steps=warmup
        )
    else:
        inner = optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    return StratifiedPruner(inner) if kind == "strat" else inner


def replay(trained: list[Trained], pruner: optuna.pruners.BasePruner) -> Replay:
    """The trials in order through a real study with `pruner`, one worker's way."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    epochs, pruned = 0, []
    for run in trained:
        trial = study.ask()
        trial.set_user_attr("variant", run.variant)
        for step, value in enumerate(run.curve):
            trial.report(value, step)
            epochs += 1
            if step + 1 < len(run.curve) and trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                pruned.append(run.variant)
                break
        else:
            study.tell(trial, run.curve[-1])
    best: dict[str, float] = {}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        v = t.user_attrs["variant"]
        best[v] = max(best.get(v, -1.0), float(t.value))  # type: ignore[arg-type]
    return Replay(best, epochs, pruned)


def ranking(best: dict[str, float], variants: list[str]) -> list[float]:
    """A score per variant (its best; −1 for none completed, so those tie last)."""
    return [best.get(v, -1.0) for v in variants]


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's τ-b of two score lists (ties counted as neither concordant nor discordant)."""
    concordant = discordant = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif (da > 0) == (db > 0):
            concordant += 1
        else:
            discordant += 1
    denom = ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)) ** 0.5
    return (concordant - discordant) / denom if denom else 1.0


def leader(best: dict[str, float], variants: list[str]) -> str | None:
    """The best variant; a tie goes to the one listed first in the spec (one rule for all)."""
    scored = [v for v in variants if v in best]
    return max(scored, key=lambda v: (best[v], -variants.index(v))) if scored else None


def curves_for(
    space: str, seeds: list[int], cache: dict[str, Any], root: Path, path: Path | None
) -> dict[int, Any]:
    """Each seed's trained curves: from the cache, else trained now (and cached in `path`,
    seed by seed: a run cut short keeps what it trained)."""
    out = {}
    for seed in seeds:
        key = f"{space}/{seed}"
        if key not in cache:
            spec = spec_for(space, seed, root)
            d = spec.dataset
            data = load_dataset(d.name, data_dir=root, seed=d.seed, train_subset=d.train_subset)
            started = time.perf_counter()
            configs = draw_configs(spec, data, seed, SPACES[space]["trials"])
            trained = train_all(configs, data)
            cache[key] = [t.__dict__ for t in trained]
            if path is not None:
                path.write_text(json.dumps(cache))
            print(
                f"  trained {space} seed {seed}: {len(trained)} configurations in "
                f"{time.perf_counter() - started:.0f} s (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        out[seed] = [Trained(**t) for t in cache[key]]
    return out


def _mean(values: Any) -> float:
    found = list(values)
    return statistics.mean(found) if found else float("nan")


def report(space: str, curves: dict[int, list[Trained]], pruners: list[str]) -> None:
    variants = SPACES[space]["dropout"]["variants"]
    seeds = sorted(curves)
    epochs = SPACES[space]["training"]["epochs"]
    unpruned = {s: replay(curves[s], build("none", epochs)) for s in seeds}
    pairs = list(itertools.combinations(seeds, 2))
    floor_lead = _mean(
        leader(unpruned[a].best, variants) == leader(unpruned[b].best, variants) for a, b in pairs
    )
    floor_tau = _mean(
        kendall_tau(ranking(unpruned[a].best, variants), ranking(unpruned[b].best, variants))
        for a, b in pairs
    )
    full = sum(u.epochs for u in unpruned.values())
    print(
        f"\n{space}: {len(variants)} variants, {SPACES[space]['trials']} configurations × "
        f"{epochs} epochs, {len(seeds)} seeds; two unpruned seeds agree on the leader "
        f"{floor_lead:.0%} of {len(pairs)} pairs, mean τ {floor_tau:+.2f}"
    )
    print(f"  {'pruner':<18} {'leader=':>7} {'τ':>6} {'saved':>6} {'lost':>5}  pruned trials")
    for name in pruners:
        runs = {s: replay(curves[s], build(name, epochs)) for s in seeds}
        lead = statistics.mean(
            leader(runs[s].best, variants) == leader(unpruned[s].best, variants) for s in seeds
        )
        tau = statistics.mean(
            kendall_tau(ranking(runs[s].best, variants), ranking(unpruned[s].best, variants))
            for s in seeds
        )
        saved = 1 - sum(r.epochs for r in runs.values()) / full
        lost = sum(len([v for v in variants if v not in r.best]) for r in runs.values())
        lost_unpruned = sum(
            len([v for v in variants if v not in u.best]) for u in unpruned.values()
        )
        counts: dict[str, int] = {}
        for r in runs.values():
            for v in r.pruned:
                counts[v] = counts.get(v, 0) + 1
        shares = ", ".join(f"{v} {n}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        print(
            f"  {name:<18} {lead:>7.0%} {tau:>+6.2f} {saved:>6.0%} {lost - lost_unpruned:>5}  "
            f"{shares or '-'}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="*", default=list(SPACES))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--pruners", nargs="*", default=DEFAULT_PRUNERS)
    parser.add_argument("--cache", type=Path, default=None, help="JSON file of trained curves")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.exists() else {}
    started = time.perf_counter()
    print(f"bench.fair_pruning, load {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="studyd-fair-") as tmp:
        root = Path(tmp)
        write_cancer(root)
        for space in args.spaces:
            curves = curves_for(space, args.seeds, cache, root, args.cache)
            report(space, curves, args.pruners)
    print(f"\n{time.perf_counter() - started:.0f} s wall, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
