"""A study of each non-MLP family end to end through the user's path: `studyd serve` with an
embedded worker (SQLite), `studyd submit --watch`, trials, summary and report. The built-in
`cnn` on digits (8×8 images) and the example plugin `resnet1d` on mnist1d (a 1-D signal)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cli_harness import Server, parsed, start_server, studyd

pytestmark = pytest.mark.slow

CNN_SPEC = """\
name: e2e-cnn
dataset: {name: digits, train_subset: 400}
model: {family: cnn, width: [4, 8], depth: 1, fc: {choices: [0, 16]}}
dropout:
  variants: [none, standard, dropconnect]
  placements: [last_hidden]
training: {epochs: 2, batch_size: 64}
search: {n_trials: 4, pruner: {name: none}, seed: 0}
baselines: [{variant: standard}, {variant: dropconnect}]
"""
PLUGIN_SPEC = """\
name: e2e-resnet1d
dataset: {name: mnist1d, train_subset: 400}
model: {family: resnet1d, channels: [4, 8], blocks: 1}
dropout:
  variants: [none, gaussian]
  placements: [conv]
  conv_form: channel
training: {epochs: 2, batch_size: 100, lr: 0.01}
search: {n_trials: 3, pruner: {name: none}, seed: 0}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("family-study"), workers=1)
    yield running
    running.stop()


def test_studyd_families_prints_each_family_its_sites_and_json(server):
    shown = studyd("families", url=server.url)
    assert shown.returncode == 0, shown.stderr
    assert "cnn — conv blocks" in shown.stdout
    assert "site conv [map]: none, standard, vanilla, gaussian, rdrop, multisample" in shown.stdout
    assert "channels (width)" in shown.stdout  # the plugin's own width field
    names = [f["name"] for f in json.loads(studyd("families", "--json", url=server.url).stdout)]
    assert names[:2] == ["mlp", "cnn"] and "resnet1d" in names


def _study(server: Server, tmp_path, text: str) -> dict:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    result = studyd(
        "submit", str(path), "--watch", "--json", "--interval", "0.5", url=server.url, timeout=400
    )
    study = parsed(result)
    assert study["state"] == "done", study
    return study


@pytest.mark.parametrize(
    "text,family,variants",
    [(CNN_SPEC, "cnn", {"standard", "dropconnect"}), (PLUGIN_SPEC, "resnet1d", set())],
    ids=["cnn", "resnet1d"],
)
def test_a_family_study_trains_its_trials_and_has_a_summary_and_report(
    server, tmp_path, text, family, variants
):
    study = _study(server, tmp_path, text)
    sid = str(study["id"])
    assert study["finished"] == study["target_trials"]
    trials = parsed(studyd("trials", sid, "--json", url=server.url))["items"]
    details = [
        parsed(studyd("trial", sid, str(t["number"]), "--json", url=server.url)) for t in trials
    ]
    configs = [d["config"] for d in details]
    assert all(c["family"] == family for c in configs)
    assert variants <= {c["variant"] for c in configs}
    assert all(d["state"] == "complete" for d in details), details
    assert max(d["value"] for d in details) > 0.12, details  # chance is 0.1 (tiny networks)
    summary = parsed(studyd("summary", sid, "--json", url=server.url))
    assert summary["n_complete"] >= study["target_trials"]
    assert summary["best_config"]["family"] == family and summary["test_score"] is not None
    report = parsed(
        studyd("report", sid, "--out", str(tmp_path / "report"), "--json", url=server.url)
    )
    assert report["files"]


@pytest.fixture
def cluster(db_url, tmp_path):
    from worker_harness import Cluster

    running = Cluster(db_url, tmp_path)
    yield running
    running.close()


def test_a_worker_trains_a_plugin_study_to_its_target_on_each_backend(cluster):
    from storage import queue

    record = cluster.submit(PLUGIN_SPEC)
    process = cluster.start_worker("--once")
    assert cluster.wait_exit(process, 300) == 0, cluster.log(0)
    done = queue.get_study(cluster.engine, record.id)
    assert done.state == "done", done.error
    assert done.finished == 3
    configs = [t.user_attrs["config"] for t in cluster.trials(record) if "config" in t.user_attrs]
    assert configs and all(c["family"] == "resnet1d" for c in configs)
