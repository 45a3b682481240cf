"""Every route through the app in this process, on SQLite and PostgreSQL."""

from __future__ import annotations

import statistics
import uuid

from api_harness import Api, add_trials, optuna_study, spec, submit
from optuna.trial import TrialState


def test_submit_returns_201_with_location_and_the_queued_study(api: Api):
    body = spec()
    response = api.client.post("/studies", json=body, params={"priority": 3})
    assert response.status_code == 201, response.text
    study = response.json()
    assert response.headers["location"] == f"/studies/{study['id']}"
    assert study["name"] == body["name"]
    assert study["state"] == "queued"
    assert study["priority"] == 3
    assert study["target_trials"] == 12
    assert study["optuna_name"] == f"{body['name']}-{study['id']}"
    assert study["trial_counts"] == {
        "running": 0,
        "waiting": 0,
        "complete": 0,
        "pruned": 0,
        "fail": 0,
    }
    assert study["best_trial"] is None
    assert study["spec"]["search"]["n_trials"] == 12
    again = api.client.get(response.headers["location"])
    assert again.status_code == 200
    assert again.json()["id"] == study["id"]


def test_idempotency_key_makes_a_retried_submit_return_the_same_study(api: Api):
    key = f"retry-{uuid.uuid4().hex}"
    body = spec()
    first = api.client.post("/studies", json=body, headers={"Idempotency-Key": key})
    second = api.client.post("/studies", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    named = api.client.get("/studies", params={"limit": 500}).json()["items"]
    assert [s["id"] for s in named if s["name"] == body["name"]] == [first.json()["id"]]
    other = api.client.post("/studies", json=spec(), headers={"Idempotency-Key": key})
    assert other.status_code == 409
    assert key in other.json()["detail"]


def test_bad_specs_are_422_naming_the_field(api: Api):
    cases = {
        "search.n_trials": spec(n_trials=10**9),
        "dropout.bogus": {**spec(), "dropout": {"bogus": 1}},
        "name": {**spec(), "name": "no spaces allowed"},
    }
    for field, body in cases.items():
        response = api.client.post("/studies", json=body)
        assert response.status_code == 422, (field, response.text)
        payload = response.json()
        assert field in payload["detail"], payload
        assert any(field in e["loc"] or field in e["msg"] for e in payload["errors"])
    for raw in (b"[1, 2]", b"not json", b'"text"'):
        response = api.client.post(
            "/studies", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str)


def test_data_paths_outside_the_data_roots_are_422(api: Api):
    for path in ("npz:../../etc/passwd", "csv:/etc/passwd", "npz:%2e%2e/%2e%2e/etc/passwd"):
        body = {**spec(), "dataset": {"name": path}}
        response = api.client.post("/studies", json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["errors"][0]["loc"] == "dataset.name"


def test_list_is_newest_first_filtered_by_state_and_paginated(api: Api):
    made = [submit(api)["id"] for _ in range(5)]
    api.client.post(f"/studies/{made[1]}/cancel")
    page = api.client.get("/studies", params={"limit": 2}).json()
    assert page["limit"] == 2 and page["offset"] == 0
    assert [s["id"] for s in page["items"]] == sorted(made, reverse=True)[:2]
    total = page["total"]
    assert total >= 5
    seen = []
    for offset in range(0, total, 2):
        chunk = api.client.get("/studies", params={"limit": 2, "offset": offset}).json()
        seen += [s["id"] for s in chunk["items"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == total
    cancelled = api.client.get("/studies", params={"state": "cancelled"}).json()
    assert made[1] in [s["id"] for s in cancelled["items"]]
    assert all(s["state"] == "cancelled" for s in cancelled["items"])
    capped = api.client.get("/studies", params={"limit": 100000}).json()
    assert capped["limit"] == 500
    assert api.client.get("/studies", params={"limit": 0}).status_code == 422
    assert api.client.get("/studies", params={"state": "nope"}).status_code == 422


def test_study_detail_counts_trials_by_state_and_shows_the_best(api: Api):
    study = submit(api)
    values = add_trials(api, study["optuna_name"], 9, pruned_every=4, failed=1)
    detail = api.client.get(f"/studies/{study['id']}").json()
    counts = detail["trial_counts"]
    assert counts["complete"] == len(values)
    assert counts["pruned"] == 2 and counts["fail"] == 1
    assert detail["best_trial"]["value"] == max(values)
    assert detail["best_trial"]["state"] == "complete"
    assert detail["direction"] == "maximize"
    timings = detail["timings"]
    assert timings["first_trial_start"] <= timings["last_trial_complete"]


def test_trials_page_filters_sorts_and_paginates(api: Api):
    study = submit(api)
    values = add_trials(api, study["optuna_name"], 14, pruned_every=5)
    url = f"/studies/{study['id']}/trials"
    page = api.client.get(url, params={"limit": 5}).json()
    assert page["total"] == 14
    assert [t["number"] for t in page["items"]] == [0, 1, 2, 3, 4]
    last = api.client.get(url, params={"limit": 5, "offset": 10}).json()
    assert [t["number"] for t in last["items"]] == [10, 11, 12, 13]
    best_first = api.client.get(url, params={"sort": "value", "state": "complete"}).json()
    assert [t["value"] for t in best_first["items"]] == sorted(values, reverse=True)
    worst_first = api.client.get(
        url, params={"sort": "value", "order": "asc", "state": "complete"}
    ).json()
    assert [t["value"] for t in worst_first["items"]] == sorted(values)
    pruned = api.client.get(url, params={"state": "pruned"}).json()
    assert pruned["total"] == 2 and all(t["state"] == "pruned" for t in pruned["items"])
    gaussian = api.client.get(url, params={"variant": "gaussian", "limit": 500}).json()
    assert gaussian["items"] and all(t["variant"] == "gaussian" for t in gaussian["items"])
    standard = api.client.get(url, params={"variant": "standard"}).json()
    assert gaussian["total"] + standard["total"] == 14
    none = api.client.get(url, params={"variant": "rdrop"}).json()
    assert none == {"items": [], "total": 0, "limit": 50, "offset": 0}
    item = page["items"][1]
    assert set(item["params"]) == {"variant", "rate", "width"}
    assert "curve" not in item["user_attrs"]  # pages carry only the small attributes
    assert api.client.get(url, params={"sort": "loss"}).status_code == 422
    assert api.client.get(url, params={"variant": "dropout9"}).status_code == 422


def test_trial_detail_has_params_config_curve_and_intermediate_values(api: Api):
    study = submit(api)
    add_trials(api, study["optuna_name"], 2)
    trial = api.client.get(f"/studies/{study['id']}/trials/1").json()
    assert trial["number"] == 1 and trial["state"] == "complete"
    assert trial["config"]["hidden"] == [trial["params"]["width"]]
    assert trial["train"] == {"epochs": 3, "lr": 0.001}
    assert [c["epoch"] for c in trial["curve"]] == [0, 1, 2]
    assert [p["step"] for p in trial["intermediate_values"]] == [0, 1, 2]
    assert trial["user_attrs"]["gap"] == 0.01
    assert trial["duration_seconds"] >= 0
    missing = api.client.get(f"/studies/{study['id']}/trials/99")
    assert missing.status_code == 404 and "99" in missing.json()["detail"]


def test_summary_reports_best_and_median_per_variant_and_importances(api: Api):
    study = submit(api)
    add_trials(api, study["optuna_name"], 16)
    trials = api.client.get(f"/studies/{study['id']}/trials", params={"limit": 500}).json()["items"]
    summary = api.client.get(f"/studies/{study['id']}/summary").json()
    assert summary["n_complete"] == 16
    for row in summary["variants"]:
        mine = [t["value"] for t in trials if t["variant"] == row["variant"]]
        assert row["n"] == len(mine)
        assert row["best"] == max(mine)
        assert row["median"] == statistics.median(mine)
    assert {r["placement"] for r in summary["placements"]} == {"hidden", "input+hidden"}
    assert set(summary["importances"]) == {"variant", "rate", "width"}
    assert abs(sum(summary["importances"].values()) - 1.0) < 1e-6
    assert summary["best"]["value"] == max(t["value"] for t in trials if t["value"] is not None)
    assert summary["best_config"]["hidden"] == [summary["best"]["params"]["width"]]
    # No replicates: the medians are described, no variant is called best.
    assert summary["verdict"].startswith("Not enough seed replicates for a verdict")
    assert f"highest median so far: {summary['variants'][0]['variant']} (" in summary["verdict"]
    assert summary["test_score"] is None


def test_summary_lists_every_requested_variant_with_its_status(api: Api):
    body = spec()
    body["dropout"]["variants"] = ["standard", "gaussian", "dropconnect", "rdrop"]
    study = api.client.post("/studies", json=body).json()
    add_trials(api, study["optuna_name"], 6, pruned_every=2)
    optuna = optuna_study(api, study["optuna_name"])
    untrained = optuna.ask()
    untrained.set_user_attr("variant", "dropconnect")
    untrained.set_user_attr("infeasible_untrained", "42,977 parameters; param_count <= 20000")
    untrained.set_constraint("param_count <= 20000", 22977.0)
    optuna.tell(untrained, state=TrialState.PRUNED)
    summary = api.client.get(f"/studies/{study['id']}/summary").json()
    rows = {r["variant"]: r for r in summary["requested_variants"]}
    assert list(rows) == ["standard", "gaussian", "dropconnect", "rdrop"]
    assert sum(r["trained"] for r in rows.values()) == 3
    assert rows["standard"]["pruned"] + rows["gaussian"]["pruned"] == 3
    assert "pruned at epoch 3" in rows["standard"]["status"] + rows["gaussian"]["status"]
    assert rows["dropconnect"]["status"] == (
        "dropconnect: no feasible configuration (1 over param_count)"
    )
    assert rows["rdrop"]["status"] == "rdrop: not tried"


def test_summary_of_an_empty_study_explains_missing_importances(api: Api):
    study = submit(api)
    summary = api.client.get(f"/studies/{study['id']}/summary").json()
    assert summary["n_complete"] == 0 and summary["importances"] == {}
    assert "at least" in summary["importances_note"]
    assert summary["verdict"] is None and summary["best"] is None


def test_cancel_then_cancel_again_is_409_and_delete_removes_study_and_trials(api: Api):
    study = submit(api)
    add_trials(api, study["optuna_name"], 2)
    cancelled = api.client.post(f"/studies/{study['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = api.client.post(f"/studies/{study['id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    assert api.client.delete(f"/studies/{study['id']}").status_code == 204
    assert api.client.get(f"/studies/{study['id']}").status_code == 404
    assert api.client.get(f"/studies/{study['id']}/trials").status_code == 404
    assert api.client.delete(f"/studies/{study['id']}").status_code == 404
    names = [s["study_name"] for s in api.client.get("/api/studies").json()["study_summaries"]]
    assert study["optuna_name"] not in names


def test_unknown_ids_are_404_and_malformed_ids_422(api: Api):
    for path in (
        "/studies/999999",
        "/studies/999999/trials",
        "/studies/999999/summary",
        "/studies/999999/trials/0",
    ):
        response = api.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == "study 999999 does not exist"
    assert api.client.post("/studies/999999/cancel").status_code == 404
    assert api.client.delete("/studies/999999").status_code == 404
    for path in ("/studies/abc", "/studies/0", f"/studies/{2**70}", "/studies/1/trials/-1"):
        response = api.client.get(path)
        assert response.status_code == 422, (path, response.text)


def test_workers_health_and_readiness(api: Api):
    assert isinstance(api.client.get("/workers").json(), list)
    assert api.client.get("/workers", params={"alive_within": 0}).status_code == 422
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready", "database": "ok"}


def test_docs_are_served_offline_and_the_schema_has_every_route(api: Api):
    schema = api.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) == {
        "/studies",
        "/studies/{study_id}",
        "/studies/{study_id}/cancel",
        "/studies/{study_id}/trials",
        "/studies/{study_id}/trials/{number}",
        "/studies/{study_id}/summary",
        "/studies/{study_id}/export.csv",
        "/studies/{study_id}/extend",
        "/studies/{study_id}/model",
        "/compare",
        "/families",
        "/workers",
        "/healthz",
        "/readyz",
    }
    assert "StudySpec" in schema["components"]["schemas"]
    body = paths["/studies"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"]["name"]
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = api.client.get(page).text
        assert f"/docs-assets/{asset}" in html
        assert "cdn" not in html.lower() and "googleapis" not in html
        assert api.client.get(f"/docs-assets/{asset}").status_code == 200


def test_a_running_study_cannot_be_deleted_until_cancelled(api: Api):
    from storage import queue
    from storage.engine import make_engine

    made = api.client.post("/studies", json=spec(), params={"priority": 1000})
    assert made.status_code == 201
    engine = make_engine(api.database_url)
    try:
        worker = queue.register_worker(engine, host="test-host", device="cpu", pid=1)
        claimed = queue.claim_trial_slot(engine, worker)  # highest priority: ours, or a peer's
        assert claimed is not None
        path = f"/studies/{claimed.id}"
        assert api.client.get(path).json()["state"] == "running"
        refused = api.client.delete(path)
        assert refused.status_code == 409 and "cancel it" in refused.json()["detail"]
        listed = [w for w in api.client.get("/workers").json() if w["id"] == worker]
        assert listed and listed[0]["host"] == "test-host" and listed[0]["study_id"] == claimed.id
        assert api.client.post(f"{path}/cancel").json()["state"] == "cancelled"
        assert api.client.delete(path).status_code == 204
        queue.unregister_worker(engine, worker)
    finally:
        engine.dispose()


def test_the_test_score_retraining_is_reported_apart_from_the_search(api: Api):
    from storage import final_steps, queue
    from storage.engine import make_engine

    study = submit(api)
    add_trials(api, study["optuna_name"], 4)
    path = f"/studies/{study['id']}"
    engine = make_engine(api.database_url)
    try:
        queue.end_study_early(engine, study["id"])  # done: its score is owed, as after a search
        before = api.client.get(f"{path}/summary").json()  # cached before the score lands
        assert before["test_score"] is None and before["test_score_seconds"] is None
        assert api.client.get(path).json()["timings"]["test_score_seconds"] is None
        worker = queue.register_worker(engine, host="scorer", device="cpu", pid=1)
        owed = next(o for o in final_steps.owed_steps(engine) if o.study_id == study["id"])
        assert owed.step == "score" and final_steps.claim_step(engine, owed, worker)
        assert final_steps.record_score(engine, study["id"], worker, 0.93, seconds=2.5)
        queue.unregister_worker(engine, worker)
    finally:
        engine.dispose()
    detail = api.client.get(path).json()
    timings = detail["timings"]
    assert (detail["test_score"], timings["test_score_seconds"]) == (0.93, 2.5)
    assert timings["test_scored_at"] >= timings["finished_at"]  # ISO 8601 UTC: ordered as text
    summary = api.client.get(f"{path}/summary").json()
    assert (summary["test_score"], summary["test_score_seconds"]) == (0.93, 2.5)
