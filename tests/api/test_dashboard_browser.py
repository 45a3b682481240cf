"""Headless Chromium loads /dashboard (token sent as a browser does) and sees the study."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from api_harness import spec
from serve_harness import Server, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TOKEN = "dashboard-browser-token"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.process,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser")
    srv = start_server(f"sqlite:///{tmp / 'studyd.db'}", tmp, token=TOKEN)
    yield srv
    srv.stop()


def test_dashboard_renders_the_submitted_study_name(guarded: Server):
    playwright = pytest.importorskip("playwright.sync_api")
    study = guarded.client.post("/studies", json=spec(name="browser-visible-study")).json()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": "studyd", "password": TOKEN}
            )
            page = context.new_page()
            response = page.goto(f"{guarded.url}/dashboard")
            assert response is not None and response.status == 200
            page.get_by_text(study["optuna_name"]).first.wait_for(timeout=30_000)
            context.close()
            # Without credentials Chromium gives up on the 401 (no one to type a password).
            anonymous = browser.new_context().new_page()
            with pytest.raises(playwright.Error, match="AUTH"):
                anonymous.goto(f"{guarded.url}/dashboard")
        finally:
            browser.close()


def test_dashboard_study_page_and_notes_work_while_deletes_are_refused(guarded: Server):
    # Issue 15 item 8: the dashboard inspects studies; deleting one there would bypass studyd.
    playwright = pytest.importorskip("playwright.sync_api")
    from api_harness import add_trials

    study = guarded.client.post("/studies", json=spec(name="browser-inspected-study")).json()
    add_trials(guarded, study["optuna_name"], 4)
    listing = guarded.client.get("/api/studies").json()["study_summaries"]
    optuna_id = next(s["study_id"] for s in listing if s["study_name"] == study["optuna_name"])
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": "studyd", "password": TOKEN}
            )
            page = context.new_page()
            detail = f"/api/studies/{optuna_id}"
            with page.expect_response(lambda r: urlsplit(r.url).path == detail) as r:
                page.goto(f"{guarded.url}/dashboard/studies/{optuna_id}")
            assert r.value.status == 200
            page.get_by_text(study["optuna_name"]).first.wait_for(timeout=30_000)
            # The requests the dashboard's own buttons send, from the page's origin.
            statuses = page.evaluate(
                """async (id) => {
                    const note = await fetch(`/api/studies/${id}/note`, {method: 'PUT',
                        headers: {'Content-Type': 'application/json'},
                        body: JSON.stringify({version: 1, body: 'looked at it'})});
                    const del = await fetch(`/api/studies/${id}`, {method: 'DELETE'});
                    return [note.status, del.status, (await del.json()).reason];
                }""",
                optuna_id,
            )
            assert statuses[:2] == [204, 403], statuses
            assert "studyd delete" in statuses[2]
            context.close()
        finally:
            browser.close()
    assert guarded.client.get(f"/studies/{study['id']}").status_code == 200


def test_a_finished_studys_dashboard_page_shows_its_metric_and_verdict(guarded: Server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    import optuna

    from storage.engine import make_engine
    from storage.optuna_storage import make_optuna_storage
    from studyd.daemon.worker import Worker, WorkerOptions

    body = spec(name="browser-answer", sampler="random", pruner="none", n_trials=4)
    body["model"] = {"depth": 1, "width": 16}
    body["dropout"] = {"variants": ["none", "standard"], "placements": ["hidden"]}
    study = guarded.client.post("/studies", json=body).json()
    # A real worker trains it to the end on the server's database; the finaliser writes the note.
    engine = make_engine(guarded.database_url)
    storage = make_optuna_storage(guarded.database_url)
    options = WorkerOptions(device="cpu", once=True, heartbeat=0.2, poll=0.05, data_dir=tmp_path)
    Worker(engine, storage, options).run()
    engine.dispose()
    detail = guarded.client.get(f"/studies/{study['id']}").json()
    assert detail["state"] == "done"
    optuna_id = storage.get_study_id_from_name(study["optuna_name"])
    assert detail["dashboard_url"] == f"{guarded.url}/dashboard/studies/{optuna_id}"
    verdict = optuna.load_study(study_name=study["optuna_name"], storage=storage)
    assert verdict.metric_names == ["val_acc"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                http_credentials={"username": "studyd", "password": TOKEN}
            )
            page = context.new_page()
            response = page.goto(detail["dashboard_url"])
            assert response is not None and response.status == 200
            # The study page labels its objective by name ("Objective 0" before).
            page.get_by_text("val_acc").first.wait_for(timeout=30_000)
            assert page.get_by_text("Objective 0").count() == 0
            # studyd's graphs are drawn on it (plotly renders their titles as SVG text).
            page.get_by_text("val_acc per variant").first.wait_for(timeout=30_000)
            page.get_by_text("train − validation accuracy gap per variant").first.wait_for(
                timeout=30_000
            )
            # Its Note tab holds the answer.
            page.goto(detail["dashboard_url"] + "/note")
            page.get_by_text(f"studyd study {study['id']}: the answer").first.wait_for(
                timeout=30_000
            )
            page.get_by_text("highest median so far").first.wait_for(timeout=30_000)
        finally:
            browser.close()
