"""Issue 15 item 8: through the mounted optuna-dashboard, studies are inspected, not changed.

Its write API went behind studyd's back: `DELETE /api/studies/N` answered 204 on a running study
(the workers went on) and on a finished one deleted the trials while studyd said `done`; `POST
/api/studies` made a study studyd does not know. Now those get a 403 naming the studyd command,
while reads, plots and notes keep working — through the app `studyd serve` runs (in process) and
through `studyd dashboard` (its own process), on both backends, with the token set.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from api_harness import add_trials, in_process_api, spec
from serve_harness import REPO, clean_env, free_port, stop_process

from studyd.client.readiness import wait_until_ready

TOKEN = "dashboard-writes-token"


def dashboard_study(client: httpx.Client, optuna_name: str) -> dict:
    listing = client.get("/api/studies")
    assert listing.status_code == 200, listing.text
    return next(s for s in listing.json()["study_summaries"] if s["study_name"] == optuna_name)


def check_writes_are_refused_and_reads_work(client: httpx.Client, optuna_name: str) -> None:
    study_id = dashboard_study(client, optuna_name)["study_id"]
    before = client.get(f"/api/studies/{study_id}")
    assert before.status_code == 200, before.text
    trials = before.json()["trials"]
    assert len(trials) == 3
    studies_before = len(client.get("/api/studies").json()["study_summaries"])

    refused = {
        "delete": client.delete(f"/api/studies/{study_id}"),
        "create": client.post("/api/studies", json={"study_name": "x", "directions": ["maximize"]}),
        "rename": client.post(f"/api/studies/{study_id}/rename", json={"study_name": "y"}),
        "tell": client.post(f"/api/trials/{trials[0]['trial_id']}/tell", json={"state": "Fail"}),
        "attrs": client.post(f"/api/trials/{trials[0]['trial_id']}/user-attrs", json={"a": 1}),
    }
    for what, response in refused.items():
        assert response.status_code == 403, (what, response.text)
        body = response.json()
        assert body["detail"] == body["reason"] and "studyd" in body["detail"], (what, body)
    assert "studyd delete" in refused["delete"].json()["detail"]
    assert "studyd submit" in refused["create"].json()["detail"]

    # Nothing changed: the study, its trials and the list of studies are as they were.
    after = client.get(f"/api/studies/{study_id}").json()
    assert [(t["trial_id"], t["state"]) for t in after["trials"]] == [
        (t["trial_id"], t["state"]) for t in trials
    ]
    assert len(client.get("/api/studies").json()["study_summaries"]) == studies_before

    # Reading, plotting and notes keep working.
    note = client.put(f"/api/studies/{study_id}/note", json={"version": 1, "body": "seen"})
    assert note.status_code == 204, note.text
    trial_id = trials[0]["trial_id"]
    trial_note = client.put(
        f"/api/studies/{study_id}/{trial_id}/note", json={"version": 1, "body": "odd one"}
    )
    assert trial_note.status_code == 204, trial_note.text
    assert client.get(f"/api/studies/{study_id}/param_importances").status_code == 200
    assert client.get(f"/csv/{study_id}").status_code == 200


def test_dashboard_mount_refuses_writes_behind_studyds_back(db_url):
    with in_process_api(db_url, api_token=TOKEN) as api:
        study = api.client.post("/studies", json=spec()).json()
        add_trials(api, study["optuna_name"], 3)
        check_writes_are_refused_and_reads_work(api.client, study["optuna_name"])
        # studyd's own view: still there, still queued, its trials counted.
        detail = api.client.get(f"/studies/{study['id']}").json()
        assert detail["state"] == "queued" and sum(detail["trial_counts"].values()) == 3
        # The studyd API still deletes (a queued study needs no cancel).
        assert api.client.delete(f"/studies/{study['id']}").status_code == 204


@pytest.mark.process
def test_studyd_dashboard_command_refuses_the_same_writes(db_url, tmp_path):
    with in_process_api(db_url) as api:
        study = api.client.post("/studies", json=spec()).json()
        add_trials(api, study["optuna_name"], 3)
    port = free_port()
    args = [sys.executable, "-m", "studyd.cli.main", "dashboard", "--database-url", db_url]
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*args, "--port", str(port)], cwd=REPO, env=clean_env(), stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/api/meta", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until_ready(up, [process], timeout=60)
        with httpx.Client(base_url=url, timeout=30) as client:
            check_writes_are_refused_and_reads_work(client, study["optuna_name"])
            request = client.build_request("GET", "/static/bundle.js")
            del request.headers["accept-encoding"]
            assert client.send(request).status_code == 200
    finally:
        stop_process(process)
    assert "Traceback" not in log.read_text(errors="replace")


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH"])
def test_every_other_write_is_refused(method):
    from api.dashboard_guard import refusal

    assert refusal(method, "/api/anything/new") is not None
    assert refusal("GET", "/api/studies/1/") is None
    assert refusal("PUT", "/api/studies/1/note/") is None
    assert refusal("PUT", "/api/studies/1/7/note") is None
