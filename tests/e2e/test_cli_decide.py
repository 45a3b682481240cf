"""`studyd workers`, `compare` and `model` as a user runs them: `studyd ...` subprocesses against
a real `studyd serve` on SQLite without workers (the rows a worker writes are written here the
worker's way, through `storage.queue` and Optuna). `extend`, which needs workers that train:
tests/e2e/test_cli_study.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import optuna
import pytest
from cli_harness import (
    TOKEN,
    Server,
    one_line_error,
    parsed,
    start_server,
    studyd,
)
from replicated_studies import add_to_study, replicated_trials, spec

from models.data import load_dataset
from models.saved import load_saved
from models.training import evaluate, train_model
from storage import queue
from storage.engine import make_engine
from studyd.daemon.model_artifact import artifact_store, store_model
from studyd.daemon.runs import trial_config
from studyd.spec import load_spec

# Every test drives `studyd` subprocesses against a `studyd serve` process.
pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("cli-decide"), workers=0)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def engine(server):
    engine = make_engine(server.database_url)
    yield engine
    engine.dispose()


def test_workers_lists_a_live_worker_with_its_study_and_trial(server, engine):
    assert parsed(studyd("workers", "--json", url=server.url)) == []
    study = queue.submit_study(engine, name="held", spec={}, target_trials=3)
    worker = queue.register_worker(engine, host="gpu-box-7", device="cuda:1", pid=os.getpid())
    queue.heartbeat(engine, worker, study_id=study.id, trial_id=None, trial_number=4)
    rows = parsed(studyd("workers", "--json", url=server.url))
    assert [(w["id"], w["host"], w["device"]) for w in rows] == [(worker, "gpu-box-7", "cuda:1")]
    assert (rows[0]["study_id"], rows[0]["trial_number"], rows[0]["state"]) == (
        study.id,
        4,
        "alive",
    )
    table = studyd("workers", url=server.url)
    assert table.returncode == 0, table.stderr
    line = next(line for line in table.stdout.splitlines() if "gpu-box-7" in line)
    assert "cuda:1" in line and "#4" in line and "alive" in line and " ago" in line
    bad = studyd("workers", "--alive-within", "0", url=server.url)
    assert "--alive-within" in one_line_error(bad)
    queue.unregister_worker(engine, worker)
    assert parsed(studyd("workers", "--json", url=server.url)) == []


# A comparison over three datasets: standard leads everywhere, none trails everywhere.
DATASETS = {
    "digits": {"standard": 0.97, "gaussian": 0.965, "none": 0.95},
    "mnist1d": {"standard": 0.71, "gaussian": 0.69, "none": 0.62},
    "mnist-5k": {"standard": 0.93, "gaussian": 0.92, "none": 0.91},
    "fashion-mnist": {"standard": 0.89, "gaussian": 0.885, "none": 0.87},
}


def _replicated_study(server: Server, dataset: str, means: dict[str, float]) -> int:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = spec(f"cmp-{dataset}", dataset, list(means))
    created = httpx.post(f"{server.url}/studies", json=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    add_to_study(server.database_url, created.json()["optuna_name"], replicated_trials(means))
    return created.json()["id"]


def test_compare_ranks_variants_across_four_datasets_and_draws_the_diagram(server, tmp_path):
    ids = [str(_replicated_study(server, d, means)) for d, means in DATASETS.items()]
    result = parsed(studyd("compare", *ids, "--json", url=server.url))
    assert result["variants"] == ["standard", "gaussian", "none"]
    assert result["mean_ranks"] == {"standard": 1.0, "gaussian": 2.0, "none": 3.0}
    # Exact p of perfect agreement over 4 studies: 3!/(3!)⁴ = 1/216; CD = 2.343·√(12/24) = 1.66.
    assert result["test"]["p_value"] == pytest.approx(1 / 216, abs=0.001)
    assert result["test"]["rejected"] and result["critical_difference"] == pytest.approx(
        1.657, 1e-3
    )
    answer = result["answer"]
    assert "standard ranks better than none (Friedman p=0.00" in answer
    assert answer.endswith("Nemenyi CD 1.66 at α=0.05); not shown better than gaussian.")
    plot = tmp_path / "cd.png"
    human = studyd("compare", *ids, "--plot", str(plot), url=server.url, columns=120)
    assert human.returncode == 0, human.stderr
    assert "average rank" in human.stdout and "1.00" in human.stdout
    assert "standard ranks better than none" in " ".join(human.stdout.split())
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    refused = one_line_error(studyd("compare", ids[0], ids[1], url=server.url))
    assert "3 to 50 studies" in refused
    # The same comparison in a study's report, with its diagram.
    others = [arg for i in ids[1:] for arg in ("--compare-with", i)]
    report = studyd("report", ids[0], "--out", str(tmp_path / "r"), *others, url=server.url)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r" / "index.html").read_text()
    assert "variants across studies" in page and "standard ranks better than none" in page
    assert (tmp_path / "r" / "across-studies.png").read_bytes()[:4] == b"\x89PNG"
    too_few = studyd("report", ids[0], "--out", str(tmp_path / "r2"), *others[:2], url=server.url)
    assert too_few.returncode == 7 and "3 to 50 studies" in one_line_error(too_few)
    assert one_line_error(studyd("compare", ids[0], ids[1], "99999", url=server.url))


def test_model_downloads_the_kept_model_which_scores_as_recorded(server, tmp_path):
    """The finaliser's retrained model, stored the finaliser's way (`store_model`) under the
    server's data directory; `studyd model` downloads it and it scores as recorded."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"name": "kept", "dataset": "digits", "model": {"depth": 1, "width": 32},
            "dropout": {"variants": ["standard"], "rate": 0.2}, "training": {"epochs": 2},
            "search": {"n_trials": 1}}  # fmt: skip
    created = httpx.post(f"{server.url}/studies", json=body, headers=headers, timeout=30).json()
    sid = str(created["id"])
    missing = studyd("model", sid, "--out", str(tmp_path / "m.pt"), url=server.url)
    assert missing.returncode == 5 and "no stored model" in one_line_error(missing)
    study = optuna.load_study(study_name=created["optuna_name"], storage=server.database_url)
    spec = load_spec(body)
    data = load_dataset("digits", data_dir=tmp_path, seed=0)
    trial = study.ask()
    model_cfg, train_cfg = trial_config(trial, spec, data)
    result = train_model(model_cfg, train_cfg, data, device="cpu")
    study.tell(trial, result.final.val_acc)
    _, score = evaluate(result.model, data.x_test, data.y_test)
    server_data = Path(server.database_url.removeprefix("sqlite:///")).parent / "data"
    store = artifact_store(server_data)
    store_model(study, study.best_trial, result.model.net, model_cfg, train_cfg, score, store)
    out = tmp_path / "model.pt"
    result_cli = studyd("model", sid, "--out", str(out), url=server.url)
    assert result_cli.returncode == 0, result_cli.stderr
    assert f"written to {out}" in result_cli.stdout
    saved = load_saved(out)
    assert evaluate(saved.net, data.x_test, data.y_test)[1] == score == saved.info["test_score"]
