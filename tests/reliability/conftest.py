"""Fixtures for the fault and abuse tests of issue 9: figures, a private PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from reliability_harness import (
    REQUIRE_SERVICES,
    PrivatePostgres,
    private_postgres_unavailable,
    write_figure,
)


@pytest.fixture
def figure(request, record_property) -> Callable[..., dict[str, Any]]:
    """`figure(name=value, ...)`: one JSON line in `.figures/` and a JUnit property per value."""

    def record(**values: Any) -> dict[str, Any]:
        for key, value in values.items():
            record_property(key, value)
        return write_figure(request.node.nodeid, **values)

    return record


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this module's own, which its tests may stop and start."""
    reason = private_postgres_unavailable()
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    pg = PrivatePostgres.create()
    try:
        yield pg
    finally:
        pg.destroy()
