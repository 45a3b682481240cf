"""The options every client command shares (`--url`, `--token`, `--json`), declared once.

`@client_command(app)` appends them to a command's own options (so `--help` lists them last, as
before) and hands the command one `ClientOptions` record instead of three parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from studyd.settings import Settings

DEFAULT_URL = Settings.model_fields["url"].default

_URL = inspect.Parameter(
    "url",
    inspect.Parameter.KEYWORD_ONLY,
    default=DEFAULT_URL,
    annotation=Annotated[
        str,
        typer.Option(
            "--url",
            envvar="STUDYD_URL",
            help="Base URL of the studyd API.",
            show_envvar=True,
            metavar="URL",
        ),
    ],
)
_TOKEN = inspect.Parameter(
    "token",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="STUDYD_API_TOKEN",
            help="API token (sent as a Bearer token).",
            show_envvar=True,
            show_default=False,
            metavar="TOKEN",
        ),
    ],
)
_JSON = inspect.Parameter(
    "as_json",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[
        bool, typer.Option("--json", help="Print the API's JSON and nothing else.")
    ],
)


@dataclass(frozen=True)
class ClientOptions:
    """Where the API is, the token to send, and whether to print the API's JSON."""

    url: str = DEFAULT_URL
    token: str | None = None
    as_json: bool = False


def client_command(
    app: typer.Typer, name: str | None = None, *, token: bool = True, json: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command whose first parameter is `options: ClientOptions`; `token=False` or
    `json=False` leave that option out for a command that has no use for it."""
    shared = [_URL, *([_TOKEN] if token else []), *([_JSON] if json else [])]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(func, eval_str=True).parameters.values()
        parameters = [p for p in own if p.name != "options"] + shared

        def command(**values: Any) -> Any:
            options = ClientOptions(
                **{p.name: values.pop(p.name) for p in shared if p.name in values}
            )
            return func(**values, options=options)

        # Typer reads the command's options from its signature and annotations.
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        command.__name__, command.__doc__ = func.__name__, func.__doc__
        command.__module__, command.__qualname__ = func.__module__, func.__qualname__
        app.command(name)(command)
        return func

    return decorate
