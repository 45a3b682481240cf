"""The CLI as a user drives it: `studyd ...` subprocesses against a real `studyd serve` (SQLite).

This module's server runs without workers, so studies stay queued and every test is fast; the
commands over trained trials (watch, summary, report) are in test_cli_study.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import (
    TINY_SPEC,
    Server,
    free_port,
    one_line_error,
    parsed,
    start_server,
    studyd,
)

# Every test drives `studyd` subprocesses against a `studyd serve` process.
pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("cli-api"), workers=0)
    yield running
    running.stop()


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC)
    return path


def submit(server: Server, spec_file: Path, *extra: str) -> dict:
    return parsed(studyd("submit", str(spec_file), "--json", *extra, url=server.url))


def test_submit_prints_only_the_id_and_status_shows_the_queued_study(server, spec_file):
    result = studyd("submit", str(spec_file), url=server.url)
    assert result.returncode == 0, result.stderr
    study_id = int(result.stdout.strip())
    status = parsed(studyd("status", str(study_id), "--json", url=server.url))
    assert status["id"] == study_id
    assert status["name"] == "cli-tiny"
    assert status["state"] == "queued"
    assert status["target_trials"] == 4
    human = studyd("status", str(study_id), url=server.url)
    assert human.returncode == 0 and "cli-tiny" in human.stdout and "queued" in human.stdout


def test_submit_json_and_priority_are_sent(server, spec_file):
    study = submit(server, spec_file, "--priority", "5")
    assert study["priority"] == 5 and study["state"] == "queued"


def test_list_filters_by_state_and_parses(server, spec_file):
    study = submit(server, spec_file)
    page = parsed(studyd("list", "--json", "--state", "queued", url=server.url))
    assert {"items", "total", "limit", "offset"} <= page.keys()
    assert study["id"] in [s["id"] for s in page["items"]]
    assert all(s["state"] == "queued" for s in page["items"])
    none_done = parsed(studyd("list", "--json", "--state", "done", url=server.url))
    assert study["id"] not in [s["id"] for s in none_done["items"]]
    table = studyd("list", url=server.url)
    assert table.returncode == 0 and "cli-tiny" in table.stdout


def test_trials_of_a_queued_study_is_an_empty_page(server, spec_file):
    study = submit(server, spec_file)
    for sort in ("value", "number"):
        page = parsed(studyd("trials", str(study["id"]), "--sort", sort, "--json", url=server.url))
        assert page["items"] == [] or all(t["state"] == "waiting" for t in page["items"])
    bad = studyd("trials", str(study["id"]), "--sort", "colour", url=server.url)
    assert "--sort" in one_line_error(bad)


def test_cancel_then_cancel_again_is_a_conflict(server, spec_file):
    study = submit(server, spec_file)
    cancelled = parsed(studyd("cancel", str(study["id"]), "--json", url=server.url))
    assert cancelled["state"] == "cancelled"
    again = studyd("cancel", str(study["id"]), url=server.url)
    assert again.returncode == 6
    one_line_error(again)
    watch = studyd("watch", str(study["id"]), "--json", url=server.url)
    assert watch.returncode == 9  # cancelled studies end `watch` with a non-zero code
    assert json.loads(watch.stdout)["state"] == "cancelled"


def test_dashboard_prints_the_servers_dashboard_url(server):
    data = parsed(studyd("dashboard", "--json", url=server.url))
    assert data["url"] == f"{server.url}/dashboard/"


def test_unknown_study_is_a_404_line_for_every_read_command(server):
    for command in (["status"], ["trials"], ["summary"], ["watch"], ["cancel"]):
        result = studyd(*command, "987654", url=server.url)
        assert result.returncode == 5, (command, result.stderr)
        assert "987654" in one_line_error(result)


def test_bad_or_missing_token_is_a_401_line(server):
    for token in ("wrong-token", None):
        result = studyd("list", url=server.url, token=token)
        assert result.returncode == 4
        assert "STUDYD_API_TOKEN" in one_line_error(result)


def test_server_down_is_one_readable_line():
    url = f"http://127.0.0.1:{free_port()}"
    for command in (["list"], ["status", "1"], ["summary", "1", "--json"]):
        result = studyd(*command, url=url)
        assert result.returncode == 3
        line = one_line_error(result)
        assert "cannot reach" in line and url in line
        assert result.stdout == ""


def test_invalid_spec_names_the_field_before_any_request(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(TINY_SPEC.replace("rate: [0.1, 0.5]", "rate: [0.1, 0.5]\n  colour: blue"))
    # No server at this URL: the spec is refused locally, before the client tries to connect.
    result = studyd("submit", str(spec), url=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 7
    assert "colour" in one_line_error(result)


def test_missing_spec_file_is_a_usage_error(tmp_path):
    result = studyd("submit", str(tmp_path / "nope.yaml"), url=None)
    assert result.returncode == 2
    assert "nope.yaml" in one_line_error(result)


def test_server_422_is_one_line_naming_the_field(server, tmp_path):
    # Valid locally (the client cannot know the server's data roots); the server refuses it.
    spec = tmp_path / "escape.yaml"
    spec.write_text(TINY_SPEC.replace("{name: digits}", "{name: 'npz:../../etc/secrets.npz'}"))
    result = studyd("submit", str(spec), url=server.url)
    assert result.returncode == 7
    assert "dataset.name" in one_line_error(result)


def test_report_of_a_study_without_trials_writes_a_page_without_plots(server, spec_file, tmp_path):
    study = submit(server, spec_file)
    out = tmp_path / "report"
    written = parsed(
        studyd("report", str(study["id"]), "--out", str(out), "--json", url=server.url)
    )
    page = Path(written["index"]).read_text()
    assert "<img" not in page and "cli-tiny" in page
    assert [Path(f).name for f in written["files"]] == ["index.html"]


# --- issue 15 item 11 ----------------------------------------------------------------------------


def test_a_url_that_is_not_a_studyd_api_is_exit_3_naming_what_answered(server, spec_file):
    submit(server, spec_file)
    # optuna-dashboard's JSON API answers at /api: its study list was read as an empty page.
    for args in (("list",), ("list", "--json"), ("status", "1")):
        result = studyd(*args, url=f"{server.url}/api")
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        line = one_line_error(result)
        assert "is not a studyd API" in line and f"{server.url}/api" in line, line
        assert result.stdout == ""
    listing = one_line_error(studyd("list", url=f"{server.url}/api"))
    assert "study_summaries" in listing and "optuna-dashboard" in listing, listing
    # A page that is not JSON at all (the dashboard's HTML) says what it was.
    page = one_line_error(studyd("status", "1", url=f"{server.url}/dashboard"))
    assert "is not a studyd API" in page and "text/html" in page, page


@pytest.mark.parametrize(
    "args",
    [
        ("list", "--state", "finished"),
        ("list", "--limit", "0"),
        ("list", "--offset", "-1"),
        ("trials", "1", "--state", "done"),
        ("trials", "1", "--sort", "colour"),
        ("submit", "spec.yaml", "--priority", "5000"),
        ("status",),
    ],
)
def test_bad_option_values_are_usage_errors_exit_2(server, args):
    result = studyd(*args, url=server.url)
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = one_line_error(result)
    assert "--help" in line, line


def test_every_client_command_takes_json(server, spec_file):
    study = submit(server, spec_file)
    cancelled = parsed(studyd("cancel", str(study["id"]), "--json", url=server.url))
    assert cancelled["state"] == "cancelled"
    deleted = parsed(studyd("delete", str(study["id"]), "--json", url=server.url))
    assert deleted == {"id": study["id"], "deleted": True}
    for command in ("submit", "list", "status", "watch", "trials", "summary", "cancel", "delete"):
        assert "--json" in studyd(command, "--help", url=None).stdout, command
    for command in ("report", "dashboard", "demo"):
        assert "--json" in studyd(command, "--help", url=None).stdout, command


def test_help_shows_conventional_placeholders():
    text = studyd("list", "--help", url=None).stdout
    assert "<bool>" not in text and "<str>" not in text and "<int>" not in text, text
    assert "[queued|running|done|failed|cancelled]" in text
    assert "URL" in text and "INTEGER" in text
    json_row = next(line for line in text.splitlines() if "--json" in line)
    assert json_row.split("--json", 1)[1].split()[0] == "Print", json_row  # a flag, no value
    for command in ("submit", "status", "serve", "worker"):
        shown = studyd(command, "--help", url=None).stdout
        assert "<bool>" not in shown and "<str>" not in shown, (command, shown)
