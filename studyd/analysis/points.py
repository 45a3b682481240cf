"""Accuracy differences as the verdict's tables write them: in points, one unit throughout.

Light on purpose: the client's tables and the daemon's dashboard note both import it.
"""

from __future__ import annotations

from typing import Any


def points(value: Any, digits: int) -> str:
    """A fraction in points (0.0254 → "2.5" with one digit); "—" for none."""
    return "—" if value is None else f"{100 * value:.{digits}f}"


def signed_points(value: Any) -> str:
    """A difference in points with its sign (0.012 → "+1.2")."""
    return "—" if value is None else f"{100 * value:+.1f}"


def comparison(cmp: Any) -> str:
    """`+1.2±0.8*`: a paired comparison in points; * = the verdict claims it."""
    if not isinstance(cmp, dict) or cmp.get("improvement") is None:
        return "—"
    text = signed_points(cmp["improvement"])
    if cmp.get("half_width") is not None:
        text += f"±{100 * cmp['half_width']:.1f}"
    return text + ("*" if cmp.get("claimed") else "")
