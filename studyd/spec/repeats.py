"""`repeats: {auto: true, max_seeds: N}`: seed replicates added round by round until decided.

A fixed `repeats: N` trains the search's chosen configurations on N more seeds, once. The auto
form starts them on `FIRST_ROUND_SEEDS` seeds, then adds one seed per round to the leader and each
rival whose difference to it is still undecided (`analysis.auto_repeats`), until every one is
shown or ruled out within ±`margin`, or `max_seeds` seeds are spent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from studyd.spec.dims import StrictModel
from studyd.spec.limits import MAX_AUTO_SEEDS

# The first round's seeds: the confidence sequence excludes nothing below about 5 seeds, so
# smaller rounds would only add rounds.
FIRST_ROUND_SEEDS = 3


class AutoRepeats(StrictModel):
    """Seeds until the verdict is decided (an anytime-valid confidence sequence), or the cap."""

    auto: Literal[True] = Field(description="add seeds round by round until decided")
    max_seeds: int = Field(
        default=20,
        ge=FIRST_ROUND_SEEDS,
        le=MAX_AUTO_SEEDS,
        strict=True,
        description="at most this many seeds per configuration",
    )
    margin: float = Field(
        default=0.01,
        ge=0.0,
        allow_inf_nan=False,
        description="a difference within ±margin (first objective's units; 0.01 = 1 point of "
        "accuracy) counts as none: the comparison is decided 'equivalent'",
    )

    @property
    def first_seeds(self) -> int:
        return min(FIRST_ROUND_SEEDS, self.max_seeds)


def repeats_form(raw: Any) -> str:
    """Which form `repeats` is written in, so an error names what is wrong in that form."""
    return "form:auto" if isinstance(raw, dict | AutoRepeats) else "form:fixed"
