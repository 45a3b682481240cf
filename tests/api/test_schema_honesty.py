"""Issue 27 item 11: what the API answers agrees with what its schema says.

`OPTIONS /studies` answered 405 with `Allow: POST` (GET is served too) and `/studies/{id}` with
`Allow: GET` (DELETE too): Starlette named the methods of the first route whose path matched.
The study name's pattern was checked but not in the schema, so a schema-valid `{"name": ""}` got
a 422. And `{"value": 0.001, "integer": true}` for `lr` (a field the schema showed) was stored
as `lr: 0`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from serve_harness import in_process_api

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('schema') / 'studyd.db'}"
    with in_process_api(url) as api:
        client = api.client
        yield client


@pytest.fixture(scope="module")
def openapi(client) -> dict:
    return client.get("/openapi.json").json()


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_405_allows_exactly_the_methods_the_schema_lists(client, openapi):
    for path, operations in openapi["paths"].items():
        listed = {m.upper() for m in operations if m in HTTP_METHODS}
        for method in {"OPTIONS", "PATCH", "PUT", "DELETE", "POST"} - listed:
            response = client.request(method, concrete(path))
            assert response.status_code == 405, (method, path, response.text)
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed == listed, (method, path)


@pytest.mark.parametrize(
    ("path", "allow"), [("/studies", "GET, POST"), ("/studies/7", "DELETE, GET")]
)
def test_options_on_the_study_routes_names_every_method(client, path, allow):
    response = client.options(path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow


NAMES = ["", "-lead", ".dot", "a b", "é", "x" * 101, "a", "A.b-c_9", "x" * 100, "7up"]


@pytest.mark.parametrize("name", NAMES, ids=lambda n: repr(n)[:12])
def test_a_name_is_accepted_exactly_when_the_schema_allows_it(client, openapi, name):
    schema = openapi["components"]["schemas"]["StudySpec"]["properties"]["name"]
    allowed = (
        re.search(schema["pattern"], name) is not None
        and schema["minLength"] <= len(name) <= schema["maxLength"]
    )
    spec = {"name": name, "training": {"epochs": 1}, "search": {"n_trials": 1}}
    response = client.post("/studies", json=spec)
    assert response.status_code == (201 if allowed else 422), response.text
    if not allowed:
        assert response.json()["detail"].startswith("name: "), response.text


def test_integer_is_not_a_field_a_spec_can_write(client, openapi):
    assert "integer" not in openapi["components"]["schemas"]["Dim"]["properties"]
    spec = {"name": "lr-integer", "training": {"lr": {"value": 0.001, "integer": True}}}
    response = client.post("/studies", json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("training.lr: unknown field 'integer'")
