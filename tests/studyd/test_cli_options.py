"""The client commands share one `--url`/`--token`/`--json` declaration, and it reaches the API."""

from __future__ import annotations

import os

import pytest
import typer
from typer.testing import CliRunner

from studyd.cli.main import app
from studyd.settings import Settings

SHARED = ("--url", "--token", "--json")
CLIENT_COMMANDS = {
    "submit",
    "list",
    "status",
    "watch",
    "trials",
    "trial",
    "summary",
    "cancel",
    "delete",
    "report",
    "export",
    "dashboard",
}


@pytest.fixture
def no_studyd_env(monkeypatch):
    for name in [k for k in os.environ if k.startswith("STUDYD_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def _shared_options(name: str) -> dict[str, tuple]:
    """The shared options a command declares: flag → what the user sees of it."""
    command = typer.main.get_command(app).commands[name]
    return {
        p.opts[0]: (p.envvar, p.help, p.default, p.metavar)
        for p in command.params
        if p.opts and p.opts[0] in SHARED
    }


def test_every_client_command_declares_the_shared_options_alike():
    seen: dict[str, set[tuple]] = {flag: set() for flag in SHARED}
    for name in CLIENT_COMMANDS:
        for flag, declared in _shared_options(name).items():
            seen[flag].add(declared)
    assert seen["--url"] == {
        ("STUDYD_URL", "Base URL of the studyd API.", Settings().url, "URL"),
    }
    assert seen["--token"] == {
        ("STUDYD_API_TOKEN", "API token (sent as a Bearer token).", None, "TOKEN")
    }
    assert seen["--json"] == {(None, "Print the API's JSON and nothing else.", False, None)}


def test_the_shared_options_come_last_and_only_where_they_serve():
    for name in CLIENT_COMMANDS - {"export", "dashboard"}:
        assert set(_shared_options(name)) == set(SHARED), name
    assert set(_shared_options("export")) == {"--url", "--token"}  # CSV is its only output
    assert set(_shared_options("dashboard")) == {"--url", "--json"}  # it sends no request
    command = typer.main.get_command(app).commands["trials"]
    assert [p.opts[0] for p in command.params[-3:]] == list(SHARED)  # --help lists them last


def test_url_and_token_from_the_environment_reach_the_client(no_studyd_env):
    no_studyd_env.setenv("STUDYD_URL", "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["status", "1", "--token", "t"])
    assert result.exit_code == 3  # ServerUnreachable: the URL was used, nothing answered
    assert "http://127.0.0.1:9" in result.output


def test_the_url_flag_overrides_the_environment_and_json_reaches_the_command(no_studyd_env):
    no_studyd_env.setenv("STUDYD_URL", "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["dashboard", "--url", "http://example.test:1", "--json"])
    assert result.exit_code == 0, result.output
    assert '"url": "http://example.test:1/dashboard/"' in result.stdout
