"""`studyd db upgrade / current / downgrade` on a real database."""

from __future__ import annotations

from typer.testing import CliRunner

from storage.migrate import head_revision
from studyd.cli.main import app


def test_db_commands_upgrade_report_and_downgrade(db_url):
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current", "--database-url", db_url])
    assert before.exit_code == 0 and "current: None" in before.output
    up = runner.invoke(app, ["db", "upgrade", "--database-url", db_url])
    assert up.exit_code == 0, up.output
    assert f"revision {head_revision()}" in up.output
    down = runner.invoke(app, ["db", "downgrade", "base", "--database-url", db_url])
    assert down.exit_code == 0 and "revision None" in down.output


def test_db_upgrade_to_unknown_revision_is_one_line_error(sqlite_url):
    result = CliRunner().invoke(
        app, ["db", "upgrade", "--revision", "nope", "--database-url", sqlite_url]
    )
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
