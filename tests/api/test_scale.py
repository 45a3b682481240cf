"""The API at scale: cached reads follow every finished trial, statements per request do not grow
with the study, our indexes exist on every path to a schema, torch stays out of the process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy as sa
from api_harness import Api, _optuna_url, add_trials, submit
from optuna.trial import TrialState

from api.context import LruCache
from storage import migrate, trials
from storage.engine import make_engine, read_only
from storage.optuna_storage import make_optuna_storage
from storage.throwaway_database import throwaway_database
from storage.trial_indexes import TRIAL_INDEXES


def _tell(api: Api, optuna_name: str, value: float | None, state: TrialState) -> None:
    """One more trial, told `value` (COMPLETE) or ended in `state`; None leaves it running."""
    study = optuna.load_study(study_name=optuna_name, storage=_optuna_url(api.database_url))
    trial = study.ask()
    trial.suggest_categorical("variant", ["standard", "gaussian"])
    trial.set_user_attr("variant", "gaussian")
    trial.set_user_attr("placement", "hidden")
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    elif state != TrialState.RUNNING:
        study.tell(trial, state=state)


def test_detail_and_summary_follow_every_finished_trial(api: Api):
    study = submit(api)
    path = f"/studies/{study['id']}"
    values = add_trials(api, study["optuna_name"], 6, pruned_every=3)
    for _ in range(2):  # the second read is served from the caches
        detail = api.client.get(path).json()
        summary = api.client.get(f"{path}/summary").json()
    assert detail["trial_counts"]["complete"] == summary["n_complete"] == len(values) == 4
    assert detail["best_trial"]["value"] == summary["best"]["value"] == max(values)

    _tell(api, study["optuna_name"], None, TrialState.RUNNING)
    _tell(api, study["optuna_name"], None, TrialState.FAIL)
    detail = api.client.get(path).json()
    assert detail["trial_counts"] == {
        "running": 1,
        "waiting": 0,
        "complete": 4,
        "pruned": 2,
        "fail": 1,
    }
    assert detail["best_trial"]["value"] == max(values)

    _tell(api, study["optuna_name"], 9.5, TrialState.COMPLETE)
    detail = api.client.get(path).json()
    summary = api.client.get(f"{path}/summary").json()
    assert detail["trial_counts"]["complete"] == summary["n_complete"] == 5
    assert detail["best_trial"]["value"] == summary["best"]["value"] == 9.5
    assert detail["best_trial"]["number"] == summary["best"]["number"] == 8
    gaussian = next(r for r in summary["variants"] if r["variant"] == "gaussian")
    assert gaussian["best"] == 9.5
    assert detail["timings"]["last_trial_complete"] >= detail["timings"]["first_trial_start"]


def test_summary_shows_the_current_state_and_test_score_over_a_cached_computation(
    api: Api,
):
    study = submit(api)
    add_trials(api, study["optuna_name"], 4)
    path = f"/studies/{study['id']}"
    assert api.client.get(f"{path}/summary").json()["state"] == "queued"
    assert api.client.post(f"{path}/cancel").status_code == 200
    assert api.client.get(f"{path}/summary").json()["state"] == "cancelled"


def _statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


NAMES = ["scale-3", "scale-60"]


def _write_two_studies(url: str) -> None:
    """A 3-trial and a 60-trial study (values 0..n-1, the last one running) on a fresh database."""
    migrate.ensure_schema(url)
    storage = make_optuna_storage(url)
    space = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for name in NAMES:
        n = int(name.rpartition("-")[2])
        study = optuna.create_study(study_name=name, storage=storage)
        for i in range(n - 1):  # each written whole: one transaction, not an ask/set/tell each
            variant = {"variant": "standard" if i % 2 else "gaussian"}
            study.add_trial(
                optuna.trial.create_trial(
                    params={"x": i / n}, distributions=space, value=float(i), user_attrs=variant
                )
            )
        running = study.ask(space)
        running.set_user_attr("variant", "standard" if (n - 1) % 2 else "gaussian")
    storage.engine.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def two_studies_url(request, tmp_path_factory) -> Iterator[str]:
    """The two studies, written once per backend: the tests that take them only read."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('scale') / 'studyd.db'}"
        _write_two_studies(url)
        yield url
        return
    with throwaway_database(request.getfixturevalue("postgres_admin_url")) as url:
        _write_two_studies(url)
        yield url


@pytest.fixture
def two_studies(two_studies_url: str) -> Iterator[tuple[sa.Engine, list[str]]]:
    """A fresh engine (for statement and checkout counts) on the two studies' database."""
    engine = make_engine(two_studies_url)
    yield engine, NAMES
    engine.dispose()


def test_reads_run_the_same_statements_whatever_the_study_size(two_studies):
    engine, (small, large) = two_studies
    seen = _statements(engine)
    counts = {}
    for name in (small, large):
        for label, read in {
            "progress": lambda n: trials.study_progress(engine, n, LruCache(4)),
            "page": lambda n: trials.trial_page(engine, n, limit=2, offset=1),
            "filtered page": lambda n: trials.trial_page(engine, n, state="complete", limit=2),
        }.items():
            seen.clear()
            read(name)
            counts[name, label] = len(seen)
    for label in ("progress", "page", "filtered page"):
        assert counts[small, label] == counts[large, label], label


def test_progress_counts_times_and_best_match_a_full_load(two_studies, two_studies_url):
    engine, names = two_studies
    cache = LruCache(4)
    storage = make_optuna_storage(two_studies_url)
    for name in names:
        every = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        for _ in range(2):
            stats, best = trials.study_progress(engine, name, cache)
        assert stats.counts["complete"] == len(every) - 1
        assert stats.counts["running"] == 1
        assert best is not None and best.value == min(t.value for t in every if t.value is not None)
        assert stats.direction == "minimize"
        assert stats.first_trial_start == min(t.datetime_start for t in every).replace(
            tzinfo=stats.first_trial_start.tzinfo
        )
        page = trials.trial_page(engine, name, limit=2, offset=1)
        assert page.total == len(every) and [r.number for r in page.rows] == [1, 2]
        complete = trials.trial_page(engine, name, state="complete", limit=1).total
        assert complete == len(every) - 1
    storage.engine.dispose()


def _reads_side_tables(statements: list[str]) -> bool:
    return any("trial_params" in s or "trial_user_attributes" in s for s in statements)


def test_a_page_of_finished_trials_is_served_from_the_cache_as_read(two_studies):
    engine, (small, _) = two_studies  # trials 0 and 1 complete, 2 running
    cache = LruCache(8)
    seen = _statements(engine)
    first = trials.trial_page(engine, small, limit=2, page_cache=cache)
    assert _reads_side_tables(seen)
    seen.clear()
    again = trials.trial_page(engine, small, limit=2, page_cache=cache)
    assert not _reads_side_tables(seen)
    uncached = trials.trial_page(engine, small, limit=2)
    assert (again.rows, again.total) == (first.rows, first.total) == (uncached.rows, uncached.total)
    assert [r.user_attrs["variant"] for r in again.rows] == ["gaussian", "standard"]


def test_reads_given_one_connection_share_it_and_read_the_same(two_studies):
    engine, (small, big) = two_studies
    checkouts: list[object] = []
    sa.event.listen(engine.pool, "checkout", lambda *a: checkouts.append(a))
    apart = (trials.study_progress(engine, big), trials.trial_page(engine, big, limit=5))
    assert len(checkouts) == 2
    checkouts.clear()
    with read_only(engine).connect() as conn:
        together = (trials.study_progress(conn, big), trials.trial_page(conn, big, limit=5))
    assert len(checkouts) == 1
    assert together == apart


def test_a_page_with_a_running_trial_shows_what_it_writes_while_it_runs(db_url):
    _write_two_studies(db_url)  # its own: this test finishes the running trial
    engine, small = make_engine(db_url), NAMES[0]
    cache = LruCache(8)
    storage = make_optuna_storage(db_url)
    study = optuna.load_study(study_name=small, storage=storage)
    running = study.get_trials(states=(TrialState.RUNNING,))[0]
    before = trials.trial_page(engine, small, offset=1, limit=2, page_cache=cache).rows
    assert "epoch_seconds" not in before[1].user_attrs
    # Its row in `trials` is unchanged by an attribute: a cache keyed by rows would go stale.
    storage.set_trial_user_attr(running._trial_id, "epoch_seconds", 0.25)
    during = trials.trial_page(engine, small, offset=1, limit=2, page_cache=cache).rows
    assert during[1].user_attrs["epoch_seconds"] == 0.25 and during[1].state == "running"
    storage.set_trial_state_values(running._trial_id, TrialState.COMPLETE, [2.0])
    after = trials.trial_page(engine, small, offset=1, limit=2, page_cache=cache).rows
    assert (after[1].state, after[1].value) == ("complete", 2.0)
    storage.engine.dispose()
    engine.dispose()


def _index_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {i["name"] for i in sa.inspect(engine).get_indexes("trials")}
    finally:
        engine.dispose()


def test_trial_indexes_exist_on_a_fresh_database_and_after_upgrading_an_old_one(db_url):
    migrate.ensure_schema(db_url)  # ours first, Optuna's tables after: created by ensure_schema
    assert set(TRIAL_INDEXES) <= _index_names(db_url)
    migrate.downgrade(db_url, "0002")
    assert not set(TRIAL_INDEXES) & _index_names(db_url)
    migrate.upgrade(db_url)  # Optuna's tables already there: the migration creates them
    assert set(TRIAL_INDEXES) <= _index_names(db_url)


def test_lru_cache_keeps_the_most_recently_used_entries():
    cache = LruCache(2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache["c"] = 3
    assert (cache.get("a"), cache.get("b", "gone"), cache.get("c"), len(cache)) == (1, "gone", 3, 2)


@pytest.mark.process
def test_the_api_process_does_not_import_torch_or_scikit_learn():
    code = "import sys, api.app; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.process
def test_submitting_a_study_does_not_import_torch_into_the_api(tmp_path):
    # The first POST /studies imported torch through models.data (the data-path checks): ~1 s
    # idle and over the fuzz run's 10 s client timeout on a busy CI machine.
    code = f"""
import sys
from fastapi.testclient import TestClient
from api.app import create_app
from storage.migrate import ensure_schema
from studyd.settings import Settings
url = "sqlite:///{tmp_path}/s.db"
ensure_schema(url)  # as studyd serve does before it serves
app = create_app(Settings(database_url=url, data_dir="{tmp_path}"))
spec = {{"name": "t", "dropout": {{"variants": ["standard"]}}, "search": {{"n_trials": 2}}}}
with TestClient(app) as client:
    assert client.post("/studies", json=spec).status_code == 201
    print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
