"""`repeats: {auto: true, max_seeds: N}`: which comparisons are undecided, and who needs a seed.

After the search and the first replicate seeds, the verdict's leader (chosen on the search
trials, `analysis.verdict`) is compared with each other replicated variant over the seeds both
have, by the anytime-valid confidence sequence (`analysis.anytime`): decided when it shows the
leader better or worse, or rules out a difference beyond the study's margin. While some
comparison is undecided and under `max_seeds`, the leader's and those rivals' chosen
configurations each get one more seed; the sequence stays valid however often this repeats.

Pure: the finaliser (after the worker's storage seam) asks `plan_more_seeds` when a round of
replicates has finished, enqueues `plan.configs` at `plan.next_seed`, or scores the study when
`plan.done`.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from studyd.analysis.anytime import Decision, decide
from studyd.analysis.verdict import rank_groups

Record = Mapping[str, Any]


@dataclass(frozen=True)
class RivalComparison:
    """The leader against one rival: their chosen configs, the shared seeds, the decision."""

    rival: str
    rival_config: str
    n_seeds: int
    decision: Decision


@dataclass(frozen=True)
class SeedPlan:
    """What the next round adds: one seed (`next_seed`) for each config in `configs`."""

    leader: str | None
    leader_config: str | None
    comparisons: list[RivalComparison] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    next_seed: int | None = None

    @property
    def done(self) -> bool:
        return not self.configs


def _seed_values(records: Sequence[Record], config_key: str) -> dict[int, float]:
    """seed → mean value of `config_key`'s replicate trials on that seed."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in records:
        if r["config_key"] == config_key and r.get("replicate"):
            by_seed[int(r["seed"])].append(float(r["value"]))
    return {s: statistics.fmean(v) for s, v in by_seed.items()}


def plan_more_seeds(
    records: Sequence[Record],
    *,
    direction: str = "maximize",
    margin: float = 0.0,
    max_seeds: int = 20,
    alpha: float = 0.05,
) -> SeedPlan:
    """The leader against every replicated rival; the configs that need one more seed."""
    rows = rank_groups(records, by="variant", direction=direction, min_replicates=1)
    replicated = [row for row in rows if row["replicated"]]
    if len(replicated) < 2:
        return SeedPlan(replicated[0]["group"] if replicated else None, None)
    sign = 1.0 if direction == "maximize" else -1.0
    leader = replicated[0]
    ours = _seed_values(records, leader["config_key"])
    comparisons, needy = [], []
    for row in replicated[1:]:
        theirs = _seed_values(records, row["config_key"])
        shared = sorted(set(ours) & set(theirs))
        diffs = [sign * (ours[s] - theirs[s]) for s in shared]
        decision = decide(diffs, margin=margin, alpha=alpha)
        comparisons.append(RivalComparison(row["group"], row["config_key"], len(shared), decision))
        if decision.state == "undecided" and len(shared) < max_seeds:
            needy.append(row["config_key"])
    if not needy:
        return SeedPlan(leader["group"], leader["config_key"], comparisons)
    seeds = {int(r["seed"]) for r in records if r.get("replicate")}
    return SeedPlan(
        leader["group"],
        leader["config_key"],
        comparisons,
        configs=[leader["config_key"], *needy],
        next_seed=max(seeds) + 1,
    )


def undecided_sentence(plan: SeedPlan, scale: float = 100.0, unit: str = "points") -> str | None:
    """Per undecided comparison, about how many more seeds would decide it (None: all decided)."""
    parts = []
    for cmp in plan.comparisons:
        if cmp.decision.state != "undecided":
            continue
        more = cmp.decision.more_seeds
        mean = cmp.decision.interval.mean
        diff = "" if mean is None else f", {scale * mean:+.1f} {unit} so far"
        about = f"about {more} more seeds" if more is not None else "more seeds than are sensible"
        parts.append(f"{plan.leader} vs {cmp.rival} ({cmp.n_seeds} seeds{diff}): {about}")
    if not parts:
        return None
    return "Undecided — " + "; ".join(parts) + "."
