"""Issue 27 item 8: one line, never a traceback, and never the password.

`studyd worker` with a wrong database URL printed a 55-145-line traceback (`dashboard` too);
`serve` printed one line with the password in it; `studyd report 1 --out /dev/null/x` was a
traceback with exit 1. Each is one `error: …` line and a documented exit code (2: usage).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from studyd.cli.main import app as cli

USAGE = 2
PASSWORD = "s3cret-pw"
NOWHERE = "http://127.0.0.1:9"  # nothing listens: these errors come before any request

BAD_URLS = {
    "refused": f"postgresql://studyd:{PASSWORD}@127.0.0.1:9/studyd",
    "unknown-host": f"postgresql://studyd:{PASSWORD}@no-such-host.invalid:5432/studyd",
    "no-directory": "sqlite:////no/such/directory/studyd.db",
    "no-driver": f"mysql://studyd:{PASSWORD}@127.0.0.1/studyd",
    "not-a-url": f"postgres ql://studyd:{PASSWORD}@host/studyd",
}


def studyd(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output.strip().splitlines()


def assert_one_database_line(code: int, lines: list[str]) -> None:
    assert code == USAGE, lines
    assert len(lines) == 1, "\n".join(lines)
    assert lines[0].startswith("error: cannot use the database at "), lines
    assert PASSWORD not in lines[0], lines


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
@pytest.mark.parametrize("command", [["worker", "--once"], ["dashboard"], ["serve"]])
def test_a_database_that_cannot_be_used_is_one_line_without_the_password(command, url):
    assert_one_database_line(*studyd(*command, "--database-url", url))


def test_a_refused_login_says_so_without_the_password(postgres_admin_url):
    from sqlalchemy.engine import make_url

    wrong = make_url(postgres_admin_url).set(password=PASSWORD)
    code, lines = studyd("worker", "--once", "--database-url", wrong.render_as_string(False))
    assert_one_database_line(code, lines)
    assert "password authentication failed" in lines[0], lines


def test_the_reason_comes_without_sqlalchemys_wrapping():
    code, lines = studyd("worker", "--once", "--database-url", BAD_URLS["refused"])
    assert "postgresql://studyd:***@127.0.0.1:9/studyd: connection failed" in lines[0], lines
    assert "(psycopg." not in lines[0] and "sqlalche.me" not in lines[0], lines


def test_a_report_directory_that_cannot_be_made_is_a_usage_error():
    code, lines = studyd("report", "1", "--out", "/dev/null/x", "--url", NOWHERE)
    assert code == USAGE, lines
    assert lines == ["error: cannot write the report to /dev/null/x: Not a directory"], lines


@pytest.mark.process
def test_a_device_that_does_not_exist_is_refused_before_lightning_is_imported(tmp_path):
    """serve restarts a dying worker up to 3 times: each start of a worker that cannot train
    imported Lightning first (seconds of CPU), to be refused by a one-line device check."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    command = [sys.executable, "-X", "importtime", "-m", "studyd.cli.main", "worker", "--once"]
    done = subprocess.run(
        [*command, "--device", "cuda:99", "--database-url", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == USAGE, done.stderr[-2000:]
    assert len(errors) == 1 and errors[0].startswith("error: device 'cuda:99' is not available")
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "torch" in imported and "lightning" not in imported
