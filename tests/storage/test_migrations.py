"""Migrations: from empty, down and up again, and beside a database Optuna made alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from sqlalchemy import inspect

from storage import migrate, queue
from storage.engine import make_engine
from storage.optuna_storage import make_optuna_storage

OURS = {"studyd_studies", "studyd_workers", "studyd_alembic_version"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_our_tables(db_url):
    assert migrate.current_revision(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current_revision(db_url) == migrate.head_revision()
    assert _tables(db_url) >= OURS


def test_downgrade_then_upgrade_round_trip_keeps_optuna_tables(db_url):
    migrate.ensure_schema(db_url)
    optuna_tables = _tables(db_url) - OURS
    assert {"studies", "trials", "alembic_version"} <= optuna_tables
    migrate.downgrade(db_url, "base")
    assert _tables(db_url) & OURS <= {"studyd_alembic_version"}
    assert _tables(db_url) - OURS == optuna_tables
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert queue.submit_study(engine, name="a", spec={}, target_trials=1).id == 1
    finally:
        engine.dispose()


def test_database_made_by_optuna_alone_is_accepted(db_url):
    storage = make_optuna_storage(db_url)
    optuna.create_study(study_name="theirs", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    storage.engine.dispose()
    migrate.ensure_schema(db_url)
    migrate.ensure_schema(db_url)  # every start calls it: a second run is a no-op
    assert _tables(db_url) >= OURS
    again = make_optuna_storage(db_url)
    assert len(optuna.load_study(study_name="theirs", storage=again).trials) == 2
    again.engine.dispose()


@pytest.mark.slow
@pytest.mark.process
def test_servers_starting_together_on_an_empty_database_all_succeed(db_url, tmp_path):
    start = tmp_path / "start"
    procs = Path(__file__).with_name("procs.py")
    children = [
        subprocess.Popen(
            [sys.executable, str(procs), "ensure", db_url, str(start)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("start.ready.*"))) < len(children):
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.02)
    start.touch()
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    assert migrate.current_revision(db_url) == migrate.head_revision()
    storage = make_optuna_storage(db_url)
    assert storage.get_all_studies() == []
    storage.engine.dispose()
