"""Read-only transactions (the API's) read beside a writer instead of queueing for its lock."""

from __future__ import annotations

import time

import sqlalchemy as sa

from storage import queue
from storage.engine import make_engine, read_only
from storage.migrate import ensure_schema


def test_sqlite_reads_do_not_wait_for_a_held_write_lock(tmp_path):
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    ensure_schema(url)
    writer_engine, reader_engine = make_engine(url), make_engine(url)
    record = queue.submit_study(writer_engine, name="s", spec={}, target_trials=3)
    with writer_engine.connect() as writer:
        # BEGIN IMMEDIATE: this connection holds the file's write lock until it commits.
        writer.execute(sa.text("UPDATE studyd_studies SET priority = 5"))
        started = time.perf_counter()
        with read_only(reader_engine).connect() as reader:
            assert reader.execute(sa.text("SELECT count(*) FROM studyd_studies")).scalar() == 1
        assert queue.get_study(reader_engine, record.id).priority == 0  # the committed value
        assert queue.count_studies(reader_engine) == 1
        # A write transaction (BEGIN IMMEDIATE) would have waited the 60 s busy timeout.
        assert time.perf_counter() - started < 5
        writer.commit()
    assert queue.get_study(reader_engine, record.id).priority == 5
    writer_engine.dispose()
    reader_engine.dispose()


def test_read_only_engine_is_the_same_pool_and_still_reads_on_every_backend(db_url):
    ensure_schema(db_url)
    engine = make_engine(db_url)
    record = queue.submit_study(engine, name="s", spec={"a": 1}, target_trials=2)
    assert read_only(engine).pool is engine.pool
    assert queue.get_study(engine, record.id).spec == {"a": 1}
    assert [s.id for s in queue.list_studies(engine)] == [record.id]
    engine.dispose()
