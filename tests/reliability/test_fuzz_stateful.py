"""Issue 9 item 6: a stateful schemathesis run against a live `studyd serve --no-workers`.

Scenarios follow the OpenAPI links the API declares from `POST /studies` (get, trials, summary,
cancel, delete), so ids are real and deep states are reached: queued studies cancelled, cancelled
ones deleted, deleted ones fetched again. Every response is checked against its schema, status
codes and content type. The HAR report counts what really ran; the figure is requests tried,
5xx seen (0) and how many 2xx each step of submit → get → trials → cancel → delete got.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from reliability_harness import REPO, Server, clean_env, start_server

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MIN_REQUESTS = 1000
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
# Stateful scenarios repeat until this budget is spent (40-90 requests a second on 2 cores).
BUDGET_S = 30
SEEDS = (9009, 9010, 9011)
TOKEN = "fuzz-token-41c2"
STEPS = {
    "submit": ("POST", r"/studies"),
    "get": ("GET", r"/studies/\d+"),
    "trials": ("GET", r"/studies/\d+/trials"),
    "cancel": ("POST", r"/studies/\d+/cancel"),
    "delete": ("DELETE", r"/studies/\d+"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    srv = start_server(f"sqlite:///{tmp / 'studyd.db'}", tmp, token=TOKEN)
    yield srv
    srv.stop()


def har_entries(path: Path) -> list[tuple[str, str, int]]:
    entries = json.loads(path.read_text())["log"]["entries"]
    return [
        (e["request"]["method"], urlsplit(e["request"]["url"]).path, e["response"]["status"])
        for e in entries
    ]


def run_schemathesis(url: str, seed: int, har: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(SCHEMATHESIS), "run", f"{url}/openapi.json",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--phases", "stateful",
        "--checks", CHECKS,
        "--max-examples", "150",
        "--max-time", str(BUDGET_S),
        "--seed", str(seed),
        "--workers", "1",
        "--report", "har", "--report-har-path", str(har),
        "--no-color",
    ]  # fmt: skip
    env = clean_env(SCHEMATHESIS_HOOKS="fuzz_hooks", PYTHONPATH=f"{HERE}:{REPO}")
    return subprocess.run(
        command, capture_output=True, text=True, timeout=400, env=env, cwd=har.parent
    )


@pytest.mark.slow
@pytest.mark.process
def test_stateful_run_gets_no_5xx_and_matches_the_schema(server, tmp_path, figure):
    started = time.monotonic()
    entries: list[tuple[str, str, int]] = []
    failures = []
    # A slow machine gets another seed's budget until the run has tried enough requests.
    for seed in SEEDS:
        har = tmp_path / f"run-{seed}.har"
        run = run_schemathesis(server.url, seed, har)
        entries += har_entries(har) if har.exists() else []
        if run.returncode != 0:
            failures.append((run.stdout + run.stderr)[-6000:])
            break
        if len(entries) >= MIN_REQUESTS:
            break
    seconds = round(time.monotonic() - started, 1)
    statuses = Counter(status for _, _, status in entries)
    ok = {
        step: sum(1 for m, p, s in entries if m == method and re.fullmatch(pattern, p) and s < 300)
        for step, (method, pattern) in STEPS.items()
    }
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    figure(
        requests_tried=len(entries),
        server_errors=server_errors,
        seconds=seconds,
        statuses=dict(sorted(statuses.items())),
        chain_ok=ok,
    )
    assert not failures, failures[0] + "\n--- server log ---\n" + server.log()
    assert server_errors == 0, statuses
    assert len(entries) >= MIN_REQUESTS, statuses
    # Every step of submit → get → trials → cancel → delete really ran on real studies.
    assert all(n > 0 for n in ok.values()), ok
    assert "Traceback" not in server.log()
