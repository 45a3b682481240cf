"""The CLI over a study that really trains: submit --watch, trials, summary, report, dashboard,
and automatic seed replicates (`repeats: {auto: true}`).

One `studyd serve` with 2 embedded workers trains the module's studies on `digits`.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import optuna
import pytest
from cli_harness import (
    STUDYD,
    TINY_SPEC,
    Server,
    free_port,
    one_line_error,
    parsed,
    start_server,
    studyd,
)
from spec_harness import THREE_RUNS

pytestmark = [pytest.mark.slow, pytest.mark.process]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("cli-study"), workers=2)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def done_study(server, tmp_path_factory) -> dict:
    """A 4-trial study submitted with `--watch --json`: exits 0 with the finished study."""
    spec = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    result = studyd(
        "submit", str(spec), "--watch", "--json", "--interval", "0.5", url=server.url, timeout=300
    )
    study = parsed(result)
    assert study["state"] == "done"
    return study


def test_submit_watch_ends_done_with_every_trial_finished(done_study):
    assert done_study["finished"] == done_study["target_trials"] == 4
    assert done_study["trial_counts"]["running"] == 0
    # Learned: chance on digits is .10 (an unseeded 2-epoch search ended at .487 once).
    assert done_study["best_trial"]["value"] > 0.3


def test_watch_on_a_done_study_exits_zero_and_says_so(server, done_study):
    result = studyd("watch", str(done_study["id"]), url=server.url)
    assert result.returncode == 0, result.stderr
    assert "4/4 finished" in result.stdout


def test_status_json_has_progress_best_and_test_score(server, done_study):
    status = parsed(studyd("status", str(done_study["id"]), "--json", url=server.url))
    assert status["state"] == "done"
    assert status["test_score"] is not None and 0.0 <= status["test_score"] <= 1.0
    human = studyd("status", str(done_study["id"]), url=server.url)
    assert "best trial" in human.stdout and "test score" in human.stdout


def test_trials_sort_filter_and_limit(server, done_study):
    sid = str(done_study["id"])
    by_value = parsed(studyd("trials", sid, "--json", url=server.url))
    assert by_value["total"] == 4
    values = [t["value"] for t in by_value["items"] if t["state"] == "complete"]
    assert values == sorted(values, reverse=True)  # best first for a maximised objective
    by_number = parsed(studyd("trials", sid, "--sort", "number", "--json", url=server.url))
    assert [t["number"] for t in by_number["items"]] == [0, 1, 2, 3]
    two = parsed(studyd("trials", sid, "--limit", "2", "--json", url=server.url))
    assert len(two["items"]) == 2 and two["total"] == 4
    for variant in ("none", "standard"):
        page = parsed(studyd("trials", sid, "--variant", variant, "--json", url=server.url))
        assert all(t["variant"] == variant for t in page["items"])
    complete = parsed(studyd("trials", sid, "--state", "complete", "--json", url=server.url))
    assert all(t["state"] == "complete" for t in complete["items"])
    table = studyd("trials", sid, url=server.url)
    assert table.returncode == 0 and "variant" in table.stdout
    # The network comes from what each trial trained (width and depth are fixed, not params);
    # the page carries its widths, not the whole config.
    assert all(t["hidden"] == [32] and "config" not in t["user_attrs"] for t in by_value["items"])
    rows = [line.split() for line in table.stdout.splitlines() if line.split()[:1] == ["0"]]
    assert rows and "1×32" in rows[0]


def test_trial_shows_what_one_trial_trained_and_its_learning_curve(server, done_study):
    sid = str(done_study["id"])
    best = done_study["best_trial"]["number"]
    trial = parsed(studyd("trial", sid, str(best), "--json", url=server.url))
    assert trial["number"] == best and trial["state"] == "complete"
    assert [c["epoch"] for c in trial["curve"]] == [0, 1]  # epochs: 2 in TINY_SPEC
    assert trial["value"] == pytest.approx(trial["curve"][-1]["val_acc"])
    human = studyd("trial", sid, str(best), url=server.url, columns=120)
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert any(line.split()[:2] == ["state", "complete"] for line in lines if line.strip())
    assert "learning curve (2 epochs)" in human.stdout
    # The curve's last row is the value the study recorded.
    last = next(line for line in lines if line.split()[:1] == ["1"])
    assert f"{trial['curve'][-1]['val_acc']:.4g}" in last.split()
    assert trial["hidden"] == trial["config"]["hidden"] == [32]  # model: depth 1, width 32
    assert any(line.split() == ["network", "1×32"] for line in lines)
    error = one_line_error(studyd("trial", sid, "99", url=server.url))
    assert error == f"error: study {sid} has no trial 99"


def test_summary_names_the_winner_and_the_test_score(server, done_study):
    summary = parsed(studyd("summary", str(done_study["id"]), "--json", url=server.url))
    assert summary["n_complete"] >= 1
    assert {v["variant"] for v in summary["variants"]} <= {"none", "standard"}
    assert summary["best"]["value"] == pytest.approx(done_study["best_trial"]["value"])
    human = studyd("summary", str(done_study["id"]), url=server.url)
    assert human.returncode == 0
    assert summary["best"]["variant"] in human.stdout


def test_report_writes_html_whose_images_all_exist(server, done_study, tmp_path):
    out = tmp_path / "report"
    result = studyd("report", str(done_study["id"]), "--out", str(out), "--json", url=server.url)
    written = parsed(result)
    index = Path(written["index"])
    page = index.read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {"history.png", "variants.png", "gap.png", "curves.png"} <= set(images)
    for name in images:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert f"study {done_study['id']}" in page


def test_cancel_of_a_done_study_is_a_conflict(server, done_study):
    result = studyd("cancel", str(done_study["id"]), url=server.url)
    assert result.returncode == 6
    one_line_error(result)


def test_dashboard_serves_optuna_dashboard_on_the_database(server, done_study):
    port = free_port()
    env_cmd = [str(STUDYD), "dashboard", "--database-url", server.database_url]
    process = subprocess.Popen(
        [*env_cmd, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                api = httpx.get(f"http://127.0.0.1:{port}/api/studies", timeout=2)
                if api.status_code == 200:
                    names = [s["study_name"] for s in api.json()["study_summaries"]]
                    assert done_study["optuna_name"] in names
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        pytest.fail("optuna-dashboard did not answer in 60 s")
    finally:
        process.terminate()
        process.wait(10)


def test_list_json_shows_the_done_study(server, done_study):
    page = parsed(studyd("list", "--json", "--state", "done", url=server.url))
    assert done_study["id"] in [s["id"] for s in page["items"]]
    assert json.dumps(page)  # round-trips as plain JSON


def test_demo_runs_a_spec_end_to_end_and_stops_its_server(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    port = free_port()
    demo_dir = tmp_path / "demo"
    result = studyd(
        "demo",
        "--dir",
        str(demo_dir),
        "--spec",
        str(spec),
        "--port",
        str(port),
        url=None,
        token=None,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "demo finished in" in result.stdout and "test score" in result.stdout
    page = (demo_dir / "report" / "index.html").read_text()
    assert all(
        (demo_dir / "report" / name).is_file() for name in re.findall(r'src="([^"]+)"', page)
    )
    assert (demo_dir / "studyd.db").is_file()
    with pytest.raises(httpx.ConnectError):  # the server is gone once the demo returns
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


MAX_SEEDS = 5
AUTO_SPEC = f"""\
name: auto-seeds
dataset: {{name: digits}}
model: {{depth: 1, width: 32}}
dropout: {{variants: [none, standard], rate: 0.3}}
training: {{epochs: 2, batch_size: 64, lr: 0.003}}
search: {{n_trials: 2, sampler: grid, pruner: {{name: none}}}}
top_k: 1
repeats: {{auto: true, max_seeds: {MAX_SEEDS}, margin: 0.005}}
"""


def _replicate_seeds(database_url: str, optuna_name: str) -> dict[str, list[int]]:
    study = optuna.load_study(study_name=optuna_name, storage=database_url)
    seeds: dict[str, list[int]] = defaultdict(list)
    for t in study.get_trials(deepcopy=False):
        if "replicate_of" in t.user_attrs:
            assert t.state == optuna.trial.TrialState.COMPLETE, t.user_attrs
            seeds[t.user_attrs["variant"]].append(t.user_attrs["replicate_seed"])
    return {variant: sorted(s) for variant, s in seeds.items()}


def test_auto_repeats_add_seeds_until_decided_or_the_cap_and_the_summary_says_which(
    server, tmp_path
):
    """`repeats: {auto: true, max_seeds: N}` through `studyd submit --watch`, then `studyd
    summary`: the rounds end when decided or at the cap, and the summary says which."""
    spec_file = tmp_path / "auto.yaml"
    spec_file.write_text(AUTO_SPEC)
    watched = studyd("submit", str(spec_file), "--watch", "--json", url=server.url, timeout=400)
    done = parsed(watched)
    assert done["state"] == "done" and done["test_score"] is not None
    seeds = _replicate_seeds(server.database_url, done["optuna_name"])
    # Both variants' chosen configs on the same seeds: 3 first, then one per round.
    assert seeds.keys() == {"none", "standard"} and seeds["none"] == seeds["standard"]
    n = len(seeds["none"])
    assert 3 <= n <= MAX_SEEDS and seeds["none"] == list(range(1, n + 1))
    assert done["finished"] == 2 + 2 * n  # the search, then every replicate, counted once
    summary = parsed(studyd("summary", str(done["id"]), "--json", url=server.url))
    undecided = re.search(r"Undecided — .* \((\d+) seeds, ", summary["verdict"] or "")
    # Stopped early only when decided; at the cap, the summary says what is still open.
    if n < MAX_SEEDS:
        assert undecided is None, summary["verdict"]
    else:
        assert undecided is None or int(undecided.group(1)) == MAX_SEEDS
    shown = studyd("summary", str(done["id"]), url=server.url)
    assert shown.returncode == 0, shown.stderr
    if undecided:
        assert "more seeds" in " ".join(shown.stdout.split())


def test_extend_gives_a_done_study_more_runs_and_a_new_test_score(server, tmp_path):
    """done → queued → running → done with N more trials; the test score is owed again and
    comes back once the extension is done (the module server's workers train every trial)."""
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(TINY_SPEC)
    first = parsed(studyd("submit", str(spec_file), "--watch", "--json", url=server.url,
                          timeout=300))  # fmt: skip
    sid = str(first["id"])
    assert first["state"] == "done" and first["test_score"] is not None
    summary = parsed(studyd("summary", sid, "--json", url=server.url))
    queued = parsed(studyd("extend", sid, "--trials", "2", "--json", url=server.url))
    assert (queued["state"], queued["target_trials"]) == ("queued", first["finished"] + 2)
    assert queued["test_score"] is None
    done = parsed(studyd("watch", sid, "--json", url=server.url, timeout=300))
    assert (done["state"], done["finished"]) == ("done", first["finished"] + 2)
    assert done["test_score"] is not None
    assert done["timings"]["test_scored_at"] > first["timings"]["test_scored_at"]
    after = parsed(studyd("summary", sid, "--json", url=server.url))
    assert after["n_complete"] >= summary["n_complete"] + 2
    running = one_line_error(studyd("extend", sid, "--trials", "0", url=server.url))
    assert "--trials" in running
    bad = studyd("extend", "99999", "--trials", "1", url=server.url)
    assert bad.returncode == 5 and "99999" in one_line_error(bad)


def test_status_says_the_search_ended_early_and_links_the_dashboard(server, tmp_path):
    spec = tmp_path / "three.yaml"
    spec.write_text(THREE_RUNS)
    submitted = studyd(
        "submit",
        str(spec),
        "--watch",
        "--json",
        "--interval",
        "0.5",
        url=server.url,
        timeout=300,
    )
    study = parsed(submitted)
    assert study["state"] == "done" and study["finished"] == 3
    status = parsed(studyd("status", str(study["id"]), "--json", url=server.url))
    assert status["search_ended"].startswith("search space exhausted")
    assert status["dashboard_url"].startswith(server.url + "/dashboard/studies/")
    human = studyd("status", str(study["id"]), url=server.url).stdout
    assert "search ended" in human and status["dashboard_url"] in human
    summary = parsed(studyd("summary", str(study["id"]), "--json", url=server.url))
    assert summary["search_ended"] == status["search_ended"]
    page = httpx.get(status["dashboard_url"], timeout=30, follow_redirects=True)
    assert page.status_code in (200, 401)  # the page exists (behind the server's token)
