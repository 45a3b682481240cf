"""503 (never 500) while the database is unreachable, and recovery once it is back."""

from __future__ import annotations

import time

import psycopg
import pytest
from api_harness import Api, in_process_api, spec
from serve_harness import Server, start_server

from storage.throwaway_database import throwaway_database
from studyd.client.rest import ServerError, StudydClient

DB_ROUTES = [
    ("GET", "/studies"),
    ("GET", "/studies/1"),
    ("GET", "/studies/1/trials"),
    ("GET", "/studies/1/trials/0"),
    ("GET", "/studies/1/summary"),
    ("POST", "/studies/1/cancel"),
    ("DELETE", "/studies/1"),
    ("GET", "/workers"),
    ("POST", "/studies"),
    ("GET", "/readyz"),
]


def assert_all_503(server: Api | Server) -> None:
    for method, path in DB_ROUTES:
        response = server.client.request(method, path, json=spec())
        assert response.status_code == 503, (method, path, response.status_code, response.text)
        assert response.json()["detail"].startswith("the database is unavailable")
        assert response.headers["retry-after"]
    assert server.client.get("/healthz").status_code == 200


def test_sqlite_database_that_cannot_be_opened_is_503(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'studyd.db'}"
    # As `uvicorn --factory api.app:create_app` would serve it: no migration before the app.
    with in_process_api(url, migrate=False) as api:
        assert_all_503(api)
        # The CLI's client turns the 503 into its one-line ServerError, not a crash.
        transport = api.client._transport  # the app in this process, not a socket
        with (
            StudydClient(str(api.client.base_url), transport=transport) as client,
            pytest.raises(ServerError, match="503"),
        ):
            client.list_studies()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def _terminate(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )


def _rename(admin_url: str, old: str, new: str) -> None:
    for _ in range(50):  # the server may reconnect between terminate and rename
        _terminate(admin_url, old)
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.1)
    raise AssertionError(f"could not rename {old}")


@pytest.mark.postgres
@pytest.mark.process
def test_postgresql_going_away_is_503_and_the_api_recovers(postgres_admin_url, tmp_path):
    with throwaway_database(postgres_admin_url) as url:
        server = start_server(url, tmp_path)
        try:
            study = server.client.post("/studies", json=spec()).json()
            name = url.rpartition("/")[2]
            # Dropped connections (server restart, idle timeout) are replaced transparently.
            _terminate(postgres_admin_url, name)
            assert server.client.get(f"/studies/{study['id']}").status_code == 200
            _rename(postgres_admin_url, name, f"{name}_away")
            try:
                assert_all_503(server)
            finally:
                _rename(postgres_admin_url, f"{name}_away", name)
            back = server.client.get(f"/studies/{study['id']}")
            assert back.status_code == 200 and back.json()["name"] == study["name"]
            assert server.client.get("/readyz").status_code == 200
            assert "Traceback" not in server.log()
        finally:
            server.stop()
