"""Issue 15 item 1: a deleted study's id is never handed out again, on either backend.

On SQLite, SQLAlchemy's `autoincrement=True` did not emit AUTOINCREMENT, so cancel + delete of the
newest study and another submit gave the new study the deleted one's id (and a worker's cache
keyed by it served the deleted spec). Through the app `studyd serve` runs (in this process, started
again over the same database for a restart), then below it for worker ids and for a database
created before migration 0004.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from reliability_harness import in_process_api

from storage import migrate, queue
from storage.engine import make_engine

SPEC = {
    "dataset": "digits",
    "dropout": {"variants": ["standard"], "placements": ["hidden"]},
    "training": {"epochs": 1},
    "search": {"n_trials": 2},
}


def submit(server) -> dict:
    response = server.client.post("/studies", json={**SPEC, "name": f"ids-{uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    return response.json()


def test_deleted_study_id_is_not_given_to_the_next_submit(db_url):
    with in_process_api(db_url) as server:
        first = submit(server)
        doomed = submit(server)
        assert server.client.post(f"/studies/{doomed['id']}/cancel").status_code == 200
        assert server.client.delete(f"/studies/{doomed['id']}").status_code == 204
        assert server.client.get(f"/studies/{doomed['id']}").status_code == 404
        after = submit(server)
        assert after["id"] not in (first["id"], doomed["id"]), (first, doomed, after)
        assert after["id"] > doomed["id"]
    # Restarting the server does not bring the id back either.
    with in_process_api(db_url) as server:
        assert server.client.delete(f"/studies/{after['id']}").status_code == 204
        assert submit(server)["id"] > after["id"]


def test_worker_ids_are_not_reused(db_url):
    migrate.ensure_schema(db_url)
    engine = make_engine(db_url)
    try:
        gone = queue.register_worker(engine, host="h", device="cpu", pid=1)
        queue.unregister_worker(engine, gone)
        assert queue.register_worker(engine, host="h", device="cpu", pid=2) > gone
    finally:
        engine.dispose()


def _old_study(engine, name: str) -> int:
    """A study row as a release at revision 0003 wrote it (only that revision's columns: the
    code's own model has columns later migrations add)."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO studyd_studies (name, spec, state, priority, target_trials, "
                "claimed, finished, created_at) "
                "VALUES (:name, '{}', 'queued', 0, 1, 0, 0, CURRENT_TIMESTAMP)"
            ),
            {"name": name},
        )
        return conn.execute(
            sa.text("SELECT max(id) FROM studyd_studies WHERE name = :name"), {"name": name}
        ).scalar_one()


def test_database_from_before_the_migration_stops_reusing_ids(sqlite_url):
    migrate.upgrade(sqlite_url, "0003")
    engine = make_engine(sqlite_url)
    try:
        ids = [_old_study(engine, f"old-{i}") for i in range(3)]
    finally:
        engine.dispose()
    migrate.ensure_schema(sqlite_url)
    assert migrate.current_revision(sqlite_url) == migrate.head_revision()
    engine = make_engine(sqlite_url)
    try:
        assert [r.id for r in queue.list_studies(engine, limit=10)] == ids[::-1]  # rows kept
        queue.cancel_study(engine, ids[-1])
        queue.delete_study(engine, ids[-1])
        assert queue.submit_study(engine, name="new", spec={}, target_trials=1).id > ids[-1]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_migration_is_a_no_op_on_postgresql(postgres_url):
    migrate.upgrade(postgres_url, "0003")
    engine = make_engine(postgres_url)
    try:
        doomed = _old_study(engine, "pg")
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM studyd_studies WHERE id = :id"), {"id": doomed})
    finally:
        engine.dispose()
    migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        assert queue.submit_study(engine, name="pg2", spec={}, target_trials=1).id > doomed
    finally:
        engine.dispose()
