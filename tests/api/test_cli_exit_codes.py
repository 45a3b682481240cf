"""Issue 27 item 9: the CLI's exit codes say what went wrong, as documented.

`--url http://host:PORT/foo` (a studyd server under a wrong path) exited 5 "Not Found" as if the
study were missing; it is a wrong URL (3), and the line names what answered and where studyd is.
`studyd status 0` exited 7 "invalid spec" from the server's 422; a bad id is a usage error (2).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from inprocess_app import served_app
from typer.testing import CliRunner

from studyd.cli.main import app as cli
from studyd.client.rest import NotFound, ServerUnreachable

USAGE = 2
NOWHERE = "http://127.0.0.1:9"  # nothing listens: a usage error must be caught before a request


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> Iterator[str]:
    database = f"sqlite:///{tmp_path_factory.mktemp('exit-codes') / 'studyd.db'}"
    with served_app(database) as base:
        yield base


def studyd(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output.strip().splitlines()


@pytest.mark.parametrize("path", ["/foo", "/api/v1/"])
def test_a_studyd_server_under_a_wrong_path_is_a_wrong_url(url, path):
    code, lines = studyd("status", "1", "--url", url + path)
    assert code == ServerUnreachable.exit_code, lines
    assert len(lines) == 1, lines
    assert "/studies/1 was answered 404" in lines[0], lines
    assert f"a studyd server answers at {url}: use --url {url}" in lines[0], lines


def test_a_missing_study_on_the_right_url_is_still_not_found(url):
    code, lines = studyd("status", "999", "--url", url)
    assert code == NotFound.exit_code, lines
    assert lines == ["error: study 999 does not exist"], lines


@pytest.mark.parametrize(
    "args",
    [
        ["status", "0"],
        ["status", "-3"],
        ["summary", "2147483648"],
        ["cancel", "0"],
        ["trial", "1", "2147483648"],
        ["trial", "0", "1"],
    ],
)
def test_an_id_out_of_range_is_a_usage_error(args):
    code, lines = studyd(*args, "--url", NOWHERE)
    assert code == USAGE, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and f"see `studyd {args[0]} --help`" in lines[0], lines
