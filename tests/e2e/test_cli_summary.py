"""`studyd summary` tells one story: through a real `studyd serve` (no workers) and the CLI, on
a study whose trials are written the worker's way: a no-dropout run reused many times, variants
measured a few times each, the single best trial not of the variant with the best median."""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections.abc import Iterator

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
from optuna.distributions import CategoricalDistribution, FloatDistribution

from studyd.analysis.evidence import DIAGNOSTIC_MEANS

# Every test drives `studyd` subprocesses against a `studyd serve` process.
pytestmark = pytest.mark.process

SPEC = {
    "name": "story",
    "dataset": "digits",
    "dropout": {"variants": ["none", "standout", "dropconnect", "multisample"]},
    "training": {"epochs": 2},
    "search": {"n_trials": 40},
}
# (variant, value) of each trained run; `none`'s first run is reused by REUSED later trials.
RUNS = [
    ("none", 0.9833),
    ("none", 0.9610),
    *[("standout", v) for v in (0.9805, 0.9749, 0.9749, 0.9610)],
    *[("dropconnect", v) for v in (0.9749, 0.9694, 0.9694, 0.9666, 0.9610)],
    ("multisample", 0.9526),
]
REUSED = 17
CONSTRAINT = "param_count <= 5000"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("cli-summary"), workers=0)
    yield running
    running.stop()


def _trial(
    number: int, variant: str, value: float, seed: int = 0, violation: float | None = None, **attrs
) -> optuna.trial.FrozenTrial:
    """A complete trial as a worker records it; `number` names its configuration; `violation`:
    its value of CONSTRAINT (≤ 0 feasible)."""
    rate = 0.0 if variant == "none" else 0.1 + 0.05 * number
    # Values with as many digits as real ones (0.393, 3.014): what must not fold at 80 columns.
    measured = {k: 0.2113 + 0.0131 * number + 0.0017 * i for i, k in enumerate(DIAGNOSTIC_MEANS)}
    diagnostics = measured | {"val_acc": value, "gap": 0.0312 + 0.001 * number}
    return optuna.trial.create_trial(
        params={"variant": variant, "rate": rate},
        distributions={
            "variant": CategoricalDistribution([v for v in SPEC["dropout"]["variants"]]),
            "rate": FloatDistribution(0.0, 0.9),
        },
        value=value,
        user_attrs={
            "variant": variant,
            "placement": "none" if variant == "none" else "hidden",
            "config_key": f"{variant}-{number}",
            "train": {"seed": seed, "epochs": 2},
            "config": {"hidden": [64], "variant": variant, "rates": [rate]},
            **diagnostics,
            **attrs,
        },
        system_attrs={} if violation is None else {f"constraints:{CONSTRAINT}": violation},
    )


def _submit(server: Server, trials: list[optuna.trial.FrozenTrial], spec: dict = SPEC) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    created = httpx.post(f"{server.url}/studies", json=spec, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    study = created.json()
    optuna.load_study(study_name=study["optuna_name"], storage=server.database_url).add_trials(
        trials
    )
    return study


@pytest.fixture(scope="module")
def study(server) -> dict:
    """A search without replicates (as `studyd demo` runs it)."""
    trials = [_trial(number, variant, value) for number, (variant, value) in enumerate(RUNS)]
    # The same no-dropout config again: its result, not a new run.
    trials += [_trial(0, "none", RUNS[0][1], reused_from=0) for _ in range(REUSED)]
    return _submit(server, trials)


# (search value, replicate values on seeds 1–3) of each variant's replicated config.
REPLICATED = {
    "standout": (0.981, [0.978, 0.979, 0.977]),
    "none": (0.975, [0.970, 0.972, 0.969]),
    "dropconnect": (0.970, [0.972, 0.975, 0.970]),
}


@pytest.fixture(scope="module")
def replicated_study(server) -> dict:
    """Three variants replicated on 3 seeds; multisample's lucky single trial is the best."""
    trials = [_trial(9, "multisample", 0.99)]
    for number, (variant, (search, replicates)) in enumerate(REPLICATED.items()):
        trials.append(_trial(number, variant, search))
        trials += [
            _trial(number, variant, value, seed=seed, replicate_of=number)
            for seed, value in enumerate(replicates, start=1)
        ]
    return _submit(server, trials)


def test_every_per_variant_number_counts_the_same_trained_runs(server, study):
    summary = parsed(studyd("summary", str(study["id"]), "--json", url=server.url))
    assert summary["n_complete"] == len(RUNS) + REUSED
    trained = {v: sum(r[0] == v for r in RUNS) for v, _ in RUNS}
    stats = {row["variant"]: row for row in summary["variants"]}
    diagnostics = {row["variant"]: row for row in summary["diagnostics"]}
    assert {v: row["n"] for v, row in stats.items()} == trained
    assert {v: row["n"] for v, row in diagnostics.items()} == trained
    assert stats["none"]["n_reused"] == REUSED and stats["none"]["median"] == (0.9833 + 0.9610) / 2
    # Counted 19 times, the reused run made `none` the "best median" before.
    assert summary["variants"][0]["variant"] == "standout"


def test_the_best_trial_and_the_leading_variant_are_told_together(server, study):
    summary = parsed(studyd("summary", str(study["id"]), "--json", url=server.url))
    assert summary["best"]["variant"] == "none" and summary["best"]["value"] == 0.9833
    assert summary["verdict"].startswith("Not enough seed replicates for a verdict")
    assert "highest median so far: standout (0.9749 over 4 trained runs" in summary["verdict"]
    note = summary["best_trial_note"]
    assert note.startswith("The best single trial, #0 (none, 0.9833), is not of standout, the ")
    assert "variant with the highest median: " in note and "lucky draw" in note


def test_with_replicates_the_verdicts_leader_and_the_best_trial_are_told_together(
    server, replicated_study
):
    sid = str(replicated_study["id"])
    summary = parsed(studyd("summary", sid, "--json", url=server.url))
    assert summary["best"]["variant"] == "multisample"
    assert summary["verdict"].startswith("standout is best; it beats the runner-up dropconnect")
    assert summary["verdict"].endswith("(multisample: too few replicates to compare).")
    assert summary["best_trial_note"] == (
        "The best single trial, #0 (multisample, 0.99), is not of the verdict's leader "
        "standout: the verdict scores each variant's chosen config by its mean over fresh "
        "replicate seeds, while one trial also carries its seed's luck (multisample has no "
        "replicated config)."
    )
    human = _readable_at_80_columns(studyd("summary", sid, url=server.url, columns=80))
    assert "verdict by variant" in human and "vs leader" in human
    # Nothing of multisample was measured on fresh seeds: its verdict row is dashes.
    assert "multisample 0 1 — — — —" in human
    # One unit: standout's mean over seeds 97.8 % and its CI half-width in points, as the
    # differences are (not 0.978 beside +0.0±2.2).
    mean, half = statistics.fmean(REPLICATED["standout"][1]), summary["by_variant"][0]["half_width"]
    assert f"standout 3 1 {100 * mean:.2f} {100 * half:.1f} — +0.8±0.1*" in human


def _readable_at_80_columns(result) -> str:
    """The output, checked to fit 80 columns with nothing cut; whitespace-joined."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert "…" not in result.stdout, result.stdout
    # A number folded over two lines leaves a line of bare digit fragments under its row.
    folded = [line for line in lines if re.fullmatch(r"[\s\d]*\d[\s\d]*", line)]
    assert not folded, result.stdout
    for name in ("dropconnect", "multisample", "standout"):
        assert any(name in line.split() for line in lines), name
    return " ".join(result.stdout.split())


def test_the_summary_reads_whole_at_80_columns_with_distinct_titles(server, study):
    result = studyd("summary", str(study["id"]), url=server.url, columns=80)
    _readable_at_80_columns(result)
    lines = result.stdout.splitlines()
    for header in ("runs", "train", "val", "gap", "ECE", "NLL", "MC ECE", "KL"):
        assert header in result.stdout
    # A timing measures the machine's load as much as the variant: not compared per variant.
    assert "ms/1k" not in result.stdout
    # Every title on one line: no line is a title's continuation.
    titled = [line for line in lines if " by variant" in line or " within each" in line]
    assert titled and all(line.rstrip().endswith(("first", "runs", "points)")) for line in titled)
    assert "MC ECE: ECE of the MC-dropout" in " ".join(result.stdout.split())
    titles = [line.strip() for line in lines if " by variant" in line or " by placement" in line]
    titles = [t for t in titles if ":" in t]
    assert len(titles) == len(set(titles)) >= 3, titles
    note = " ".join(result.stdout.split())
    assert "The best single trial, #0 (none, 0.9833), is not of standout" in note
    assert "feasible" not in note  # no constraints: nothing to count
    # The best config shows its own variant's knobs: no dropout, no rates.
    assert "its config hidden=64, variant=none its training" in note


def test_with_constraints_the_summary_counts_the_feasible_trials_and_says_so(server):
    # dropconnect's two trials beat every other but break the bound: it must not lead.
    runs = [("standout", 0.97, -100.0), ("standout", 0.95, 0.0), ("none", 0.96, -3.0)]
    runs += [("dropconnect", 0.99, 900.0), ("dropconnect", 0.985, 20.0)]
    trials = [_trial(n, v, value, violation=over) for n, (v, value, over) in enumerate(runs)]
    # Trial 0's config on two more seeds; one seed breaks the bound (as a seed-dependent metric
    # can): it still counts, or the config's mean over seeds would keep only its lucky seeds.
    trials += [
        _trial(0, "standout", value, seed=seed, violation=over, replicate_of=0)
        for seed, (value, over) in enumerate([(0.968, -90.0), (0.955, 5.0)], start=1)
    ]
    spec = {**SPEC, "search": {"n_trials": 5, "constraints": [CONSTRAINT]}}
    study = _submit(server, trials, spec)
    summary = parsed(studyd("summary", str(study["id"]), "--json", url=server.url))
    assert (summary["n_complete"], summary["n_feasible"]) == (7, 4)
    assert {row["variant"]: row["n"] for row in summary["variants"]} == {"standout": 4, "none": 1}
    assert summary["best"]["number"] == 0 and summary["variants"][0]["variant"] == "standout"
    text = " ".join(studyd("summary", str(study["id"]), url=server.url).stdout.split())
    assert "7 complete trials, 4 feasible (only feasible configs count below)" in text
    assert "n feasible 4" in text


def test_every_variant_asked_for_is_listed_with_what_became_of_it(server):
    """Issue 26: gaussian's only trial pruned at epoch 2, dropconnect's only one over the bound;
    the summary names both instead of showing three of five variants."""
    spec = {
        **SPEC,
        "dropout": {"variants": ["none", "standout", "gaussian", "dropconnect", "rdrop"]},
        "search": {"n_trials": 4, "constraints": [CONSTRAINT]},
    }
    trials = [_trial(0, "none", 0.97, violation=-10.0), _trial(1, "standout", 0.96, violation=-9.0)]
    trials.append(_trial(2, "dropconnect", 0.98, violation=37977.0))
    curve = [{"epoch": e, "val_acc": 0.5} for e in range(2)]
    trials.append(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            intermediate_values={0: 0.4, 1: 0.5},
            user_attrs={"variant": "gaussian", "curve": curve},
        )
    )
    study = _submit(server, trials, spec)
    result = studyd("summary", str(study["id"]), url=server.url, columns=80)
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    lines = [line.strip() for line in result.stdout.splitlines()]
    asked = lines[lines.index("variants asked for:") + 1 :][:5]
    assert asked == [
        "none: 1 trained run",
        "standout: 1 trained run",
        "gaussian: 0 trained runs (1 pruned at epoch 2)",
        "dropconnect: no feasible configuration (1 over param_count)",
        "rdrop: not tried",
    ]


def test_the_trials_say_which_broke_a_constraint_and_by_how_much(server):
    """`studyd trials` (and the API's trial pages and details under it) mark the trials the
    summary leaves out: on the boundary is feasible, over it or unmeasured is not."""
    runs = [("standout", 0.97, -100.0), ("none", 0.96, 0.0), ("dropconnect", 0.99, 900.0)]
    runs += [("dropconnect", 0.95, float("inf"))]  # param_count not recorded
    trials = [_trial(n, v, value, violation=over) for n, (v, value, over) in enumerate(runs)]
    spec = {**SPEC, "search": {"n_trials": 4, "constraints": [CONSTRAINT]}}
    sid = str(_submit(server, trials, spec)["id"])
    items = parsed(studyd("trials", sid, "--json", url=server.url))["items"]
    by_number = {t["number"]: t for t in items}
    assert {n: t["feasible"] for n, t in by_number.items()} == {
        0: True, 1: True, 2: False, 3: False
    }  # fmt: skip
    assert [by_number[n]["constraints"] for n in range(4)] == [
        {CONSTRAINT: -100.0}, {CONSTRAINT: 0.0}, {CONSTRAINT: 900.0}, {CONSTRAINT: None}
    ]  # fmt: skip
    headers = {"Authorization": f"Bearer {TOKEN}"}
    detail = httpx.get(f"{server.url}/studies/{sid}/trials/2", headers=headers).json()
    assert (detail["feasible"], detail["constraints"]) == (False, {CONSTRAINT: 900.0})
    rows = {
        int(line.split()[0]): line
        for line in studyd("trials", sid, url=server.url, columns=120).stdout.splitlines()
        if line.split() and line.split()[0].isdigit()
    }
    assert sorted(n for n, line in rows.items() if "(infeasible)" in line) == [2, 3]
    told = {
        n: next(line for line in studyd("trial", sid, str(n), url=server.url).stdout.splitlines()
                if line.startswith(CONSTRAINT))[len(CONSTRAINT):].strip()
        for n in range(4)
    }  # fmt: skip
    assert told == {
        0: "met, 100 to spare", 1: "met, 0 to spare", 2: "broken by 900",
        3: "not measured (infeasible)",
    }  # fmt: skip


def test_without_constraints_a_trial_is_neither_feasible_nor_infeasible(server, study):
    items = parsed(studyd("trials", str(study["id"]), "--json", url=server.url))["items"]
    assert items and all(t["feasible"] is None and t["constraints"] == {} for t in items)
    assert "infeasible" not in studyd("trials", str(study["id"]), url=server.url).stdout


def test_a_running_trial_shows_what_it_reported_so_far(server):
    """The curve is recorded when a trial ends; until then `studyd trial` shows its reports."""
    running = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING,
        params={"variant": "none", "rate": 0.0},
        distributions={
            "variant": CategoricalDistribution(SPEC["dropout"]["variants"]),
            "rate": FloatDistribution(0.0, 0.9),
        },
        intermediate_values={0: 0.5125, 1: 0.6375},
        user_attrs={"variant": "none", "placement": "none"},
    )
    sid = str(_submit(server, [running])["id"])
    shown = studyd("trial", sid, "0", url=server.url, columns=100)
    assert shown.returncode == 0, shown.stderr
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert ["state", "running"] in lines
    assert "reported so far (2 epochs)" in shown.stdout
    assert ["0", "0.5125"] in lines and ["1", "0.6375"] in lines


def test_importances_count_the_runs_the_rest_of_the_summary_counts(server):
    """Under "only feasible configs count below", the importances too: a study with infeasible
    runs and reused repeats gets the importances of its feasible trained runs alone."""
    runs = [("standout", 0.97, -1.0), ("standout", 0.95, -1.0), ("none", 0.96, -1.0)]
    runs += [("dropconnect", 0.99, 5.0), ("dropconnect", 0.985, 5.0), ("standout", 0.93, -1.0)]
    runs += [("dropconnect", 0.94, -1.0), ("none", 0.955, -1.0), ("standout", 0.91, -1.0)]
    spec = {**SPEC, "search": {"n_trials": 9, "constraints": [CONSTRAINT]}}
    trials = [_trial(n, v, value, violation=over) for n, (v, value, over) in enumerate(runs)]
    # Trial 2's run told five more times: a repeat, not a run.
    trials += [_trial(2, "none", 0.96, violation=-1.0, reused_from=2) for _ in range(5)]
    mixed = _submit(server, trials, spec)
    feasible = [_trial(n, v, value) for n, (v, value, over) in enumerate(runs) if over <= 0]
    alone = _submit(server, feasible)
    got = {
        name: parsed(studyd("summary", str(s["id"]), "--json", url=server.url))
        for name, s in (("mixed", mixed), ("alone", alone))
    }
    assert got["mixed"]["n_feasible"] == 12 and got["mixed"]["n_complete"] == 14
    assert set(got["mixed"]["importances"]) == {"variant", "rate"}
    assert got["mixed"]["importances"] == got["alone"]["importances"]
    overall = got["mixed"]["variant_importances"]["overall"]["params"]
    assert got["mixed"]["importances"] == pytest.approx(overall)
    assert got["mixed"]["importances_note"] is None


def test_the_report_plots_the_runs_the_summary_counts(server, tmp_path):
    """`studyd report` on a study with infeasible runs and reused repeats: its per-variant plots
    say how many runs each variant has, and they are the summary's counts."""
    runs = [("standout", 0.97, -1.0), ("standout", 0.95, -1.0), ("none", 0.96, -1.0)]
    runs += [("dropconnect", 0.99, 5.0), ("dropconnect", 0.94, -1.0), ("none", 0.955, -1.0)]
    trials = [_trial(n, v, value, violation=over) for n, (v, value, over) in enumerate(runs)]
    trials += [_trial(2, "none", 0.96, violation=-1.0, reused_from=2) for _ in range(4)]
    spec = {**SPEC, "search": {"n_trials": 6, "constraints": [CONSTRAINT]}}
    sid = str(_submit(server, trials, spec)["id"])
    summary = parsed(studyd("summary", sid, "--json", url=server.url))
    counted = {row["variant"]: row["n"] for row in summary["variants"]}
    assert counted == {"standout": 2, "none": 2, "dropconnect": 1}
    result = studyd("report", sid, "--out", str(tmp_path / "report"), url=server.url)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    captions = re.findall(r"Runs: ([^.<]+)\.", page)
    assert len(captions) == 2  # accuracy and gap per variant
    for caption in captions:
        shown = {name: int(n) for name, n in (part.rsplit(" ", 1) for part in caption.split(", "))}
        assert shown == counted
    assert "a grey × broke a constraint" in page  # the history marks trial 3, not counted
    for image in re.findall(r'<img src="([^"]+)"', page):
        assert (tmp_path / "report" / image).stat().st_size > 0


def test_export_writes_every_trial_as_csv_with_its_feasibility(server, tmp_path):
    runs = [("standout", 0.97, -100.0), ("none", 0.96, 0.0), ("dropconnect", 0.99, 900.0)]
    trials = [_trial(n, v, value, violation=over) for n, (v, value, over) in enumerate(runs)]
    spec = {**SPEC, "search": {"n_trials": 3, "constraints": [CONSTRAINT]}}
    sid = str(_submit(server, trials, spec)["id"])
    printed = studyd("export", sid, url=server.url)
    assert printed.returncode == 0, printed.stderr
    rows = list(csv.DictReader(io.StringIO(printed.stdout)))
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert [r["feasible"] for r in rows] == ["true", "true", "false"]
    assert [float(r[f"constraint.{CONSTRAINT}"]) for r in rows] == [-100.0, 0.0, 900.0]
    assert [float(r["value.val_acc"]) for r in rows] == [0.97, 0.96, 0.99]
    target = tmp_path / "trials.csv"
    written = studyd("export", sid, "--out", str(target), url=server.url)
    assert written.returncode == 0 and written.stdout.strip() == f"3 trials written to {target}"
    assert target.read_text() == printed.stdout
    nowhere = tmp_path / "missing" / "trials.csv"
    error = one_line_error(studyd("export", sid, "--out", str(nowhere), url=server.url))
    assert error.startswith(f"error: cannot write {nowhere}")
    assert one_line_error(studyd("export", "999", url=server.url)).startswith("error: ")


def test_trials_through_a_pipe_keep_every_number_and_say_how_to_see_the_rest(server, study):
    """Issue 26: at 80 columns every number printed as "0…" and numbers ≥ 10 as "…", and 20 of
    29 rows were shown without naming --limit."""
    result = studyd("trials", str(study["id"]), "--sort", "number", url=server.url, columns=80)
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.stdout, result.stdout
    numbers = [line.split()[0] for line in lines if line.split() and line.split()[0].isdigit()]
    assert numbers[:20] == [str(n) for n in range(20)]
    assert f"{len(RUNS) + REUSED - 20} more: --limit {len(RUNS) + REUSED} shows all" in lines
