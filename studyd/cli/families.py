"""`studyd families`: the model families a spec can name, with their fields and dropout sites."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text

from studyd.cli.client_options import ClientOptions, client_command
from studyd.cli.output import connect, emit


def render_families(families: list[dict[str, Any]]) -> Text:
    """Each family: its fields (width and depth marked), then each site with its variants."""
    text = Text()
    for family in families:
        text.append(family["name"], style="bold")
        text.append(f" — {family['about']}")
        if not family["stackable"]:
            text.append(" (trains one trial at a time)", style="dim")
        text.append("\n  fields: ")
        marks = {family["width"]: " (width)", family["depth"]: " (depth)"}
        text.append(", ".join(f"{name}{marks.get(name, '')}" for name in family["fields"]))
        for site in family["sites"]:
            text.append(f"\n  site {site['name']} [{site['kind']}]: ")
            text.append(", ".join(site["variants"]))
        text.append("\n")
    return text


def register(app: typer.Typer) -> None:
    """Add `studyd families` to the `studyd` app."""

    @client_command(app)
    def families(options: ClientOptions) -> None:
        """List the model families installed on the server: fields, sites, variants per site."""
        with connect(options) as api:
            emit(api.families(), options.as_json, render_families)
