"""Where the client commands write: stdout for results, one line on stderr for errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from studyd.cli.client_options import ClientOptions
from studyd.client.rest import ClientError, StudydClient

# markup off: names, errors and paths from users are printed as they are.
out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)


def fail(message: str, code: int) -> typer.Exit:
    """Print one readable line on stderr; the caller raises the returned Exit."""
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def connect(options: ClientOptions) -> Iterator[StudydClient]:
    """A client whose errors become one line on stderr and the error's exit code."""
    try:
        with StudydClient(options.url, options.token) as api:
            yield api
    except ClientError as exc:
        raise fail(exc.message, exc.exit_code) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit(data: Any, as_json: bool, view: Callable[[Any], Any]) -> None:
    """`--json`: the API's JSON as is; otherwise the human view of it."""
    if as_json:
        print_json(data)
    else:
        out.print(view(data))
