"""The `studyd` command: server commands (serve, worker, db, proxy, demo) and client commands."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup

from studyd.cli import client, db, decide, families, proxy, serve, worker
from studyd.cli.output import fail

# Placeholders in `--help` as command-line tools write them. Typer's own are the Python types
# (`--json <bool>`, `--url <str>`): a flag takes no value, so it shows none.
_PLACEHOLDERS = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "Path": "PATH"}


def _placeholder(param: Any) -> str:
    if isinstance(param, TyperArgument):
        # An argument's type column ignores its metavar; this one instance shows the same words.
        kind = _PLACEHOLDERS.get(param.bare_type(), param.bare_type().upper())
        param.display_type_rich = lambda ctx: kind
        return param.name.upper()
    if getattr(param, "is_flag", False):
        return ""
    described = getattr(param, "type_descriptor", None)
    if described is not None and described.is_choice:
        return "[" + "|".join(str(c) for c in described.choices) + "]"
    bare = param.bare_type() if hasattr(param, "bare_type") else "str"
    return _PLACEHOLDERS.get(bare, bare.upper())


class StudydGroup(TyperGroup):
    """The `studyd` group: conventional `--help` placeholders, one-line usage errors (exit 2)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            # Usage errors (a bad option value, a missing argument) are exit 2 like any CLI's,
            # but on one line like every other studyd error, not in a box of usage text.
            usage_error = getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message")
            if not usage_error or type(exc).__name__ == "NoArgsIsHelpError":  # that one is help
                raise
            hint = f"; see `{exc.ctx.command_path} --help`" if getattr(exc, "ctx", None) else ""
            message = exc.format_message().replace("Value error, ", "").rstrip(".")
            raise fail(message + hint, 2) from None

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            for param in [*command.params, command.get_help_option(ctx)]:
                if param is not None and param.metavar is None:
                    param.metavar = _placeholder(param)
        return command


app = typer.Typer(
    cls=StudydGroup,
    name="studyd",
    help="studyd: automatic hyperparameter studies for dropout.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """studyd: automatic hyperparameter studies for dropout."""


@app.command()
def version() -> None:
    """Print the studyd version."""
    from studyd import __version__

    typer.echo(__version__)


for module in (db, worker, serve, proxy, client, decide, families):
    module.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
