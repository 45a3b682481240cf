"""The study's optuna-dashboard page: objectives named, and a note with the answer once it ends."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna_dashboard import get_note

from storage import queue
from studyd.daemon.dashboard_graphs import (
    GAP_BY_VARIANT,
    OBJECTIVE_BY_VARIANT,
    RATE_VS_OBJECTIVE,
    counted_runs,
)
from studyd.daemon.dashboard_note import study_note
from studyd.daemon.service import submit_spec
from studyd.daemon.worker import Worker, WorkerOptions
from studyd.spec import load_spec


def test_a_finished_study_names_its_objective_and_notes_verdict_table_and_test_score(
    sqlite_backend, tmp_path
):
    engine, storage = sqlite_backend
    spec = load_spec(
        "name: noted\nmodel: {depth: 1, width: 16}\ntraining: {epochs: 2, lr: 0.01}\n"
        "dropout: {variants: [none, standard], rate: [0.1, 0.6]}\n"
        "search: {n_trials: 6, sampler: random, pruner: none, seed: 0}"
    )
    record = submit_spec(engine, storage, spec)
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    assert study.metric_names == ["val_acc"]  # named at submit, before any trial
    options = WorkerOptions(device="cpu", once=True, heartbeat=0.2, poll=0.05, data_dir=tmp_path)
    Worker(engine, storage, options).run()
    done = queue.get_study(engine, record.id)
    assert done.state == "done" and done.test_score is not None
    note = get_note(optuna.load_study(study_name=record.optuna_name, storage=storage))
    assert f"# studyd study {record.id}: the answer" in note
    assert "**Verdict:**" in note and "highest median so far" in note
    assert f"{done.test_score:.3f}" in note
    assert "| none |" in note and "| standard |" in note and "| gap |" in note
    assert "fANOVA within each variant" in note
    # The key plots are the dashboard's graphs, each over the runs the search counted.
    finished = optuna.load_study(study_name=record.optuna_name, storage=storage)
    graphs = dashboard_graphs(storage, finished)
    assert set(graphs) == {OBJECTIVE_BY_VARIANT, GAP_BY_VARIANT, RATE_VS_OBJECTIVE}
    runs = counted_runs(finished)
    accuracy = graphs[OBJECTIVE_BY_VARIANT]
    assert accuracy["layout"]["title"]["text"] == "val_acc per variant"
    plotted = sorted(y for box in accuracy["data"] for y in box["y"])
    assert plotted == sorted(t.value for t in runs)
    assert {box["name"] for box in accuracy["data"]} == {t.user_attrs["variant"] for t in runs}
    gaps = sorted(y for box in graphs[GAP_BY_VARIANT]["data"] for y in box["y"])
    assert gaps == pytest.approx(sorted(t.user_attrs["gap"] for t in runs))
    scatter = {s["name"]: s for s in graphs[RATE_VS_OBJECTIVE]["data"]}
    assert all(x == 0.0 for x in scatter["none"]["x"])
    assert all(0.1 <= x <= 0.6 for x in scatter.get("standard", {"x": []})["x"])


def dashboard_graphs(storage, study: optuna.Study) -> dict:
    """The graphs optuna-dashboard serves for the study: what its study page draws."""
    detail = dashboard_detail(storage, study)
    return {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}


def dashboard_detail(storage, study: optuna.Study) -> dict:
    """optuna-dashboard's JSON for the study page (graphs, best trials)."""
    import httpx
    import optuna_dashboard

    study_id = storage.get_study_id_from_name(study.study_name)
    transport = httpx.WSGITransport(app=optuna_dashboard.wsgi(storage))
    with httpx.Client(transport=transport, base_url="http://dashboard") as client:
        return client.get(f"/api/studies/{study_id}", params={"after": 0}).json()


def test_the_note_explains_a_best_trial_panel_that_shows_an_infeasible_trial(
    sqlite_backend, tmp_path
):
    engine, storage = sqlite_backend
    # The wide network beats the narrow one and breaks a bound only training measures: its
    # validation loss falls below 0.3 (param_count is decided before training, untrained).
    spec = load_spec(
        "name: bound\nmodel: {depth: 1, width: {choices: [4, 256]}}\n"
        "training: {epochs: 10, lr: 0.01}\ndropout: {variants: [standard], rate: 0.1}\n"
        "search: {n_trials: 2, sampler: grid, pruner: none, constraints: ['val_loss >= 0.3']}"
    )
    record = submit_spec(engine, storage, spec)
    options = WorkerOptions(device="cpu", once=True, heartbeat=0.2, poll=0.05, data_dir=tmp_path)
    Worker(engine, storage, options).run()
    study = optuna.load_study(study_name=record.optuna_name, storage=storage)
    ours = study.user_attrs["test_trial"]
    panel = dashboard_detail(storage, study)["best_trials"][0]["number"]
    assert study.trials[ours].user_attrs["val_loss"] >= 0.3
    assert panel != ours  # what the note is for: the panel shows the infeasible wide network
    note = " ".join(get_note(study).split())
    assert f"studyd's best trial is #{ours}: the best feasible search trial" in note
    panel_line = f"Best Trial panel shows #{panel}: its query counts seed replicates"
    assert panel_line in note
    # Its graphs plot what the summary counts: the feasible run, not the wide one.
    plotted = [y for box in dashboard_graphs(storage, study)[OBJECTIVE_BY_VARIANT]["data"]
               for y in box["y"]]  # fmt: skip
    assert plotted == [study.trials[ours].value]


def test_the_note_puts_the_verdict_and_search_end_first_and_reads_importances_per_variant():
    evidence = {
        "verdict": "standard beats none by 0.020 ± 0.010 (p = 0.01)",
        "variant_stats": [{"group": "standard", "n": 9, "best": 0.91, "median": 0.9}],
        "diagnostics": [{"variant": "standard", "train_acc": 0.95, "val_acc": 0.9, "gap": 0.05}],
        "variant_importances": {
            "overall": {"params": {"variant": 0.5, "rate": 0.3, "lr": 0.2}},
            "variants": {"standard": {"params": {"rate": 0.9}, "marginal_effect": 0.01}},
        },
    }
    note = study_note(
        evidence,
        metric="val_acc",
        studyd_id=7,
        test_score=0.88,
        test_trial=3,
        search_ended="search space exhausted: all 3 distinct configurations trained",
    )
    lines = note.splitlines()
    assert lines[2] == "**Verdict:** standard beats none by 0.020 ± 0.010 (p = 0.01)"
    assert "**Test score** of the best trial (#3): 0.880" in note
    assert "**Search:** search space exhausted" in note
    assert "| standard | 9 | 0.910 | 0.900 | 0.950 | 0.900 | 0.050 |" in note
    assert "across variants: variant 0.50, rate 0.30, lr 0.20" in note
    assert "**standard** (effect vs mean 0.0100): rate 0.90" in note


def test_the_note_lists_every_variant_asked_for_and_the_replicate_table():
    leader = {"group": "standard", "replicated": True, "n_seeds": 3, "mean": 0.9512}
    leader |= {"half_width": 0.0123, "vs_best": None}
    leader["vs_none"] = {"improvement": 0.021, "half_width": 0.008, "claimed": True}
    unreplicated = {"group": "gaussian", "replicated": False, "n_seeds": 1, "mean": 0.9}
    evidence = {
        "verdict": "standard is best",
        "variant_stats": [{"group": "standard", "n": 9, "best": 0.96, "median": 0.95}],
        "by_variant": [leader, unreplicated],
        "requested_variants": [
            {"status": "standard: 9 trained runs"},
            {"status": "gaussian: 0 trained runs (1 pruned at epoch 2)"},
        ],
    }
    note = study_note(evidence, metric="val_acc", studyd_id=7, test_score=None)
    assert "- gaussian: 0 trained runs (1 pruned at epoch 2)" in note.splitlines()
    assert "| standard | 3 | 95.12 | 1.2 | — | +2.1±0.8* |" in note.splitlines()
    assert "| gaussian |" not in note.split("## Seed replicates")[1].split("## Per variant")[0]
