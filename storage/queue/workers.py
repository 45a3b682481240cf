"""The worker registry: register, heartbeat (which also records the lease), unregister, list."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from storage.queue.records import WorkerGone, WorkerRecord, worker_record
from storage.queue.sessions import reading, transaction, utcnow
from storage.queue.slots import settle_slot
from storage.schema import Worker


def register_worker(
    engine: Engine, *, host: str, device: str, pid: int, lease_of: int | None = None
) -> int:
    """A new worker row; with `lease_of`, an extra slot's row of that worker's stack."""
    with transaction(engine) as session:
        now = utcnow(session)
        row = Worker(
            host=host, device=device, pid=pid, started_at=now, last_heartbeat=now, lease_of=lease_of
        )
        session.add(row)
        session.flush()
        return row.id


def heartbeat(
    engine: Engine,
    worker_id: int,
    study_id: int | None = None,
    trial_id: int | None = None,
    trial_number: int | None = None,
) -> None:
    """Mark the worker alive; given values update its lease (None leaves a field as it is)."""
    values: dict[str, Any] = {}
    for field, value in (
        ("study_id", study_id),
        ("trial_id", trial_id),
        ("trial_number", trial_number),
    ):
        if value is not None:
            values[field] = value
    with transaction(engine) as session:
        values["last_heartbeat"] = utcnow(session)
        done = session.execute(update(Worker).where(Worker.id == worker_id).values(**values))
        if done.rowcount != 1:
            raise WorkerGone(f"worker {worker_id} was reaped or unregistered")


def unregister_worker(engine: Engine, worker_id: int) -> None:
    """Remove the worker's row; a slot it still holds is given back."""
    with transaction(engine) as session:
        row = session.get(Worker, worker_id, with_for_update=True)
        if row is None:
            return
        settle_slot(session, row.study_id, "release")
        session.delete(row)


def list_workers(engine: Engine, alive_within: float | None = None) -> list[WorkerRecord]:
    """Registered workers, one per process (a stack's lease rows folded into their worker's
    `trials`), optionally only those heard from in the last `alive_within` seconds."""
    with reading(engine) as session:
        query = select(Worker).order_by(Worker.id)
        if alive_within is not None:
            cutoff = utcnow(session) - timedelta(seconds=alive_within)
            query = query.where(Worker.last_heartbeat >= cutoff)
        rows = list(session.scalars(query))
    held: dict[int, list[int]] = {}
    for row in rows:
        if row.trial_number is not None:
            held.setdefault(row.lease_of or row.id, []).append(row.trial_number)
    return [
        dataclasses.replace(worker_record(row), trials=tuple(sorted(held.get(row.id, []))))
        for row in rows
        if row.lease_of is None
    ]
