"""Optuna's storage on our database URL (same engine options), or a gRPC proxy client."""

from __future__ import annotations

from urllib.parse import urlsplit

import grpc
import optuna
from optuna.storages import BaseStorage, GrpcStorageProxy, RDBStorage
from sqlalchemy.exc import SQLAlchemyError

from storage.engine import engine_options, sqlalchemy_url

# What the storage raises while it cannot be reached: the database (SQLAlchemy's errors, or
# Optuna's wrapper of them) or the gRPC proxy (any RpcError the client does not map to KeyError,
# ValueError or UpdateFinishedTrialError: UNAVAILABLE while the proxy is down, INTERNAL while its
# database is). Callers give work back and retry, as for a database outage.
STORAGE_ERRORS: tuple[type[Exception], ...] = (
    SQLAlchemyError,
    optuna.exceptions.StorageInternalError,
    grpc.RpcError,
)


def make_optuna_storage(
    url: str,
    *,
    heartbeat_interval: float | None = None,
    grace_period: float | None = None,
) -> BaseStorage:
    """`RDBStorage` on `url` (retrying a heartbeat-stale trial once), or `grpc://host:port`."""
    if url.startswith("grpc://"):
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ValueError(f"a gRPC storage URL needs a host and a port: {url!r}")
        return GrpcStorageProxy(host=parts.hostname, port=parts.port)
    callback = None
    if heartbeat_interval is not None:
        # Optuna's own stale check (when another trial of the study starts) gets one retry,
        # like our reaper; RetryFailedTrialCallback is its deprecated alias.
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    return RDBStorage(
        sqlalchemy_url(url),
        engine_kwargs=engine_options(url),
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=callback,
    )
