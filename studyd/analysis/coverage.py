"""Every variant the spec asks for, with what became of its trials — so none vanishes silently.

Issue 26: five variants asked, three shown; gaussian's only trial was pruned at epoch 2 and
DropConnect's only one broke the constraint, and the verdict read as if three were asked. The
summary, report, note and CLI list each requested variant with one line from here, e.g.
"gaussian: 0 trained runs (1 pruned at epoch 2)" or "dropconnect: no feasible configuration
(1 over param_count)".

A trial here is a mapping with `state` ("complete", "pruned", "fail", "running", "waiting"),
`user_attrs` (`variant`, and when set `replicate_of`, `reused_from`, `infeasible_untrained`),
`constraints` (text → Optuna's value, > 0 broken) and, for a pruned trial, `epochs` (how many it
trained). Light on purpose: the client imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from studyd.analysis.counted import trained

Trial = Mapping[str, Any]
INFEASIBLE_ATTR = "infeasible_untrained"  # studyd.daemon.config_constraints.INFEASIBLE_ATTR


@dataclass
class VariantCoverage:
    """What one requested variant's trials came to."""

    variant: str
    trained: int = 0  # feasible runs trained to the end (a reused one counts once)
    pruned_epochs: list[int] = field(default_factory=list)  # epochs each pruned trial trained
    infeasible: dict[str, int] = field(default_factory=dict)  # "over param_count" → trials
    failed: int = 0
    pending: int = 0  # waiting or running

    @property
    def status(self) -> str:
        """One line: "gaussian: 0 trained runs (1 pruned at epoch 2)"."""
        extras = [*self._pruned(), *self._broken(), *self._others()]
        detail = f" ({', '.join(extras)})" if extras else ""
        if self.trained == 0 and self.infeasible and not self.pruned_epochs and not self.pending:
            return f"{self.variant}: no feasible configuration{detail}"
        if self.trained == 0 and not extras:
            return f"{self.variant}: not tried"
        return f"{self.variant}: {plural(self.trained, 'trained run')}{detail}"

    def _pruned(self) -> list[str]:
        epochs = sorted(self.pruned_epochs)
        if not epochs:
            return []
        if len(set(epochs)) == 1:
            return [f"{len(epochs)} pruned at epoch {epochs[0]}"]
        return [f"{len(epochs)} pruned at epochs {epochs[0]}–{epochs[-1]}"]

    def _broken(self) -> list[str]:
        return [f"{n} {why}" for why, n in sorted(self.infeasible.items())]

    def _others(self) -> list[str]:
        out = [f"{self.failed} failed"] if self.failed else []
        return out + ([f"{self.pending} pending"] if self.pending else [])

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "trained": self.trained,
            "pruned": len(self.pruned_epochs),
            "infeasible": sum(self.infeasible.values()),
            "failed": self.failed,
            "pending": self.pending,
            "status": self.status,
        }


def plural(n: int, noun: str) -> str:
    """ "1 trained run", "2 trained runs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def broken_bounds(constraints: Mapping[str, float]) -> list[str]:
    """ "over param_count" / "under val_acc" for each broken constraint (value > 0)."""
    out = []
    for text, value in constraints.items():
        if value > 0:
            metric, *rest = text.split()
            out.append(f"{'under' if rest and rest[0] == '>=' else 'over'} {metric}")
    return out


def variant_coverage(requested: Sequence[str], trials: Sequence[Trial]) -> list[VariantCoverage]:
    """One record per requested variant (the spec's order), then any other variant seen."""
    found = {v: VariantCoverage(v) for v in requested}
    for trial in trials:
        variant = trial["user_attrs"].get("variant")
        if variant is None:
            continue  # asked, config not recorded yet: it has no variant to its name
        entry = found.setdefault(str(variant), VariantCoverage(str(variant)))
        _count(entry, trial)
    return list(found.values())


def _count(entry: VariantCoverage, trial: Trial) -> None:
    state = trial["state"]
    attrs = trial["user_attrs"]
    broken = broken_bounds(trial.get("constraints") or {})
    if INFEASIBLE_ATTR in attrs or (state == "complete" and broken):
        for why in broken or ["infeasible"]:
            entry.infeasible[why] = entry.infeasible.get(why, 0) + 1
    elif state == "complete":
        entry.trained += len(trained([trial]))
    elif state == "pruned":
        entry.pruned_epochs.append(int(trial.get("epochs") or 0))
    elif state == "fail":
        entry.failed += 1
    else:
        entry.pending += 1
