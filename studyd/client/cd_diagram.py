"""Demšar's critical-difference diagram of a comparison across studies (GET /compare's JSON).

Average ranks on an axis (1 = best, on the left); a bar of length CD above it; a thick line
joins each maximal group of variants the post-hoc test does not tell apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # written on servers without a display
import matplotlib.pyplot as plt  # noqa: E402


def indistinct_groups(order: Sequence[str], pairs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Maximal runs of rank-ordered variants with no pair told apart (two or more each)."""
    different = {frozenset((p["a"], p["b"])) for p in pairs if p["different"]}
    groups: list[list[str]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and not any(
            frozenset((order[m], order[j + 1])) in different for m in range(i, j + 1)
        ):
            j += 1
        run = list(order[i : j + 1])
        if len(run) > 1 and not any(set(run) <= set(g) for g in groups):
            groups.append(run)
    return groups


def write_cd_diagram(comparison: Mapping[str, Any], path: Path) -> list[list[str]]:
    """Draw the diagram to `path` (PNG, SVG or PDF by its suffix); returns the groups drawn."""
    order, ranks = comparison["variants"], comparison["mean_ranks"]
    k, cd = len(order), comparison.get("critical_difference")
    groups = indistinct_groups(order, comparison["pairs"])
    half = (k + 1) // 2
    # Labels hang below the group bars, one row each, left half from the left.
    top = 0.4 + 0.3 * len(groups)
    rows = max(half, k - half)
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.35 * (rows + top)))
    try:
        ax.set_xlim(-1.2, k + 2.2)  # room for the names beside the axis
        ax.set_ylim(-(rows + top + 0.5), 2.0)
        ax.axis("off")
        ax.hlines(0, 1, k, color="black")
        for r in range(1, k + 1):
            ax.vlines(r, 0, 0.15, color="black")
            ax.text(r, 0.3, str(r), ha="center", fontsize=9)
        for i, name in enumerate(order):
            left = i < half
            y = -top - (i if left else k - 1 - i) * 0.8
            x_end = 0.5 if left else k + 0.5
            ax.plot([ranks[name], ranks[name], x_end], [0, y, y], color="black", lw=0.8)
            ax.text(
                x_end + (-0.05 if left else 0.05),
                y,
                f"{name} ({ranks[name]:.2f})",
                ha="right" if left else "left",
                va="center",
                fontsize=9,
            )
        for n, group in enumerate(groups):
            y = -0.25 - 0.3 * n
            ax.plot([ranks[group[0]] - 0.05, ranks[group[-1]] + 0.05], [y, y], lw=3, color="C3")
        if cd is not None:
            ax.plot([1, 1 + cd], [1.2, 1.2], color="black", lw=1.5)
            ax.text(1 + cd / 2, 1.35, f"CD = {cd:.2f}", ha="center", fontsize=9)
        test = comparison["test"]
        ax.set_title(
            f"{len(comparison['studies'])} studies · {test['test']} p = {test['p_value']:.3g}",
            fontsize=10,
        )
        fig.savefig(path, bbox_inches="tight", dpi=120)
    finally:
        plt.close(fig)
    return groups
