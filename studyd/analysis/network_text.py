"""A trained network and its dropout rates in a few words, from a recorded `ModelConfig` dump
(or a spec): what `studyd trials`' net column, the summary, the report and the dashboard note
say of a study's family and of the site each rate acts at.

Pure functions of JSON: the CLI runs where a plugin family may not be installed, so nothing here
asks `models.families`; the rate rule is `models.sites`' (a site of depth unit i reads
`rates[i]`, one outside the units `rates[-1]`, `input` reads `input_rate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_FAMILY = "mlp"  # models.families.DEFAULT_FAMILY (a config without `family` is an MLP)
# Sites that read one rate per depth unit: the MLP's per-layer sites; any other family's sites
# but these three (cnn's and the example plugin's `conv`: one per conv block).
_MLP_UNIT_SITES = frozenset({"hidden", "pre_activation"})
_SHARED_SITES = frozenset({"input", "hidden", "last_hidden"})
_UNITS = {DEFAULT_FAMILY: "one per hidden layer", "cnn": "one per conv block"}


def family_of(config: Mapping[str, Any]) -> str:
    return str(config.get("family") or DEFAULT_FAMILY)


def widths_text(widths: Sequence[int]) -> str:
    """`2×128` (depth × width) when the widths are equal, else `256-64`; `—` for none."""
    if not widths:
        return "—"
    if len(set(widths)) == 1:
        return f"{len(widths)}×{widths[0]}"
    return "-".join(str(w) for w in widths)


def architecture(config: Mapping[str, Any], *, name_mlp: bool = False) -> str:
    """The network in a few columns: an MLP's widths (`2×32`, `mlp 2×32` with `name_mlp`),
    `cnn 16-32 fc64` (channels per conv block, the hidden FC layer when it has one), a plugin's
    name and widths (`resnet1d 2×8`)."""
    family = family_of(config)
    body = widths_text([int(w) for w in config.get("hidden") or []])
    if family == DEFAULT_FAMILY:
        return f"mlp {body}" if name_mlp else body
    fc = (config.get("arch") or {}).get("fc") if family == "cnn" else None
    return f"{family} {body}" + (f" fc{fc}" if fc else "")


def unit_site(family: str, site: str) -> bool:
    """Whether `site` reads one rate per depth unit (else one rate, or `input_rate`)."""
    if family == DEFAULT_FAMILY:
        return site in _MLP_UNIT_SITES
    return site not in _SHARED_SITES


def _rate(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else str(value)


def site_rates(config: Mapping[str, Any]) -> str | None:
    """Each site the config's dropout acts at with its rate(s): `conv 0.10/0.20, last_hidden
    0.20` (one per conv block at `conv`); None without dropout."""
    if config.get("variant", "none") == "none":
        return None
    family = family_of(config)
    rates = list(config.get("rates") or [])
    parts = []
    for site in config.get("placements") or ["hidden"]:
        if site == "input":
            used = [config.get("input_rate", 0.0)]
        elif unit_site(family, site) and len(set(rates)) > 1:
            used = rates
        else:
            used = rates[-1:]
        if used:
            parts.append(f"{site} {'/'.join(_rate(r) for r in used)}")
    return ", ".join(parts) or None


def spec_rate_sites(family: str, placements: Sequence[str], per_layer: bool) -> str:
    """Which searched rate acts at which site, for a spec's placements (`conv+last_hidden`, …):
    `rate at conv (one per conv block), last_hidden; input_rate at input`."""
    sites = list(dict.fromkeys(s for p in placements for s in p.split("+")))
    unit = _UNITS.get(family, "one per depth unit")
    named = [
        f"{s} ({unit})" if per_layer and unit_site(family, s) else s for s in sites if s != "input"
    ]
    rate = "rate_i" if per_layer else "rate"
    parts = [f"{rate} at {', '.join(named)}"] if named else []
    if "input" in sites:
        parts.append("input_rate at input")
    return "; ".join(parts)
