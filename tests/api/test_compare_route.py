"""GET /compare in-process (TestClient over a real SQLite file): ranks across studies, refusals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_harness import in_process_api
from fastapi.testclient import TestClient
from replicated_studies import add_to_study, replicated_trials, spec

# Three datasets; `standard` leads everywhere, `none` trails everywhere.
DATASETS = {
    "digits": {"standard": 0.97, "gaussian": 0.965, "none": 0.95},
    "mnist1d": {"standard": 0.71, "gaussian": 0.69, "none": 0.62},
    "mnist-5k": {"standard": 0.93, "gaussian": 0.935, "none": 0.91},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[TestClient, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('compare') / 'studyd.db'}"
    with in_process_api(url) as app:
        yield app.client, url


def _study(api, dataset: str, means: dict[str, float]) -> int:
    client, url = api
    created = client.post("/studies", json=spec(f"cmp-{dataset}", dataset, list(means)))
    assert created.status_code == 201, created.text
    add_to_study(url, created.json()["optuna_name"], replicated_trials(means))
    return created.json()["id"]


@pytest.fixture(scope="module")
def ids(api) -> list[int]:
    return [_study(api, dataset, means) for dataset, means in DATASETS.items()]


def test_compare_ranks_the_shared_variants_across_three_datasets(api, ids):
    client, _ = api
    response = client.get("/compare", params={"ids": ",".join(map(str, ids))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["variants"] == ["standard", "gaussian", "none"]
    assert body["mean_ranks"] == pytest.approx({"standard": 4 / 3, "gaussian": 5 / 3, "none": 3})
    digits = body["studies"][0]
    assert digits["dataset"] == "digits" and digits["direction"] == "maximize"
    assert digits["scores"]["gaussian"] == {
        "mean": pytest.approx(0.965), "n_seeds": 3, "replicated": True, "rank": 2.0,
    }  # fmt: skip
    assert body["test"]["test"] == "friedman" and body["posthoc"] == "nemenyi"
    assert body["critical_difference"] == pytest.approx(1.913, abs=1e-3)  # 2.343·√(12/18)
    # Three datasets cannot show this (χ² = 4.67, exact p = 0.194): the answer says so.
    assert body["test"]["p_value"] == pytest.approx(0.194, abs=0.01)
    assert not body["test"]["rejected"]
    assert "no evidence that any variant ranks better" in body["answer"]
    assert body["unreplicated"] == [] and body["left_out"] == {}


def test_studies_sharing_too_few_variants_are_refused_with_the_reason(api, ids):
    client, _ = api
    lone = _study(api, "digits", {"dropconnect": 0.9, "standout": 0.91})
    refused = client.get("/compare", params={"ids": f"{ids[0]},{ids[1]},{lone}"})
    # The request is well formed; the studies' data is what cannot be ranked: 409, not 422.
    assert refused.status_code == 409
    assert "share 0 variants" in refused.json()["detail"]
    two = client.get("/compare", params={"ids": f"{ids[0]},{ids[1]}"})
    assert two.status_code == 422 and "3 to 50 studies" in two.json()["detail"]
    again = client.get("/compare", params={"ids": f"{ids[0]},{ids[0]},{ids[1]}"})
    assert again.status_code == 422 and "named once" in again.json()["detail"]
    for bad in ("1,x", "1,,2", "", "1," * 120 + "1"):
        response = client.get("/compare", params={"ids": bad})
        assert response.status_code == 422 and "comma-separated" in response.json()["detail"]
    assert client.get("/compare", params={"ids": f"{ids[0]},{ids[1]},999"}).status_code == 404
    # Schema-valid ids no study can have are unknown studies, not bad input.
    for impossible in ("0", "9999999999"):
        unknown = client.get("/compare", params={"ids": f"{ids[0]},{ids[1]},{impossible}"})
        assert unknown.status_code == 404 and f"no study {impossible}" in unknown.json()["detail"]
    empty = client.post("/studies", json=spec("cmp-empty", "digits", ["standard", "none"]))
    waiting = client.get("/compare", params={"ids": f"{ids[0]},{ids[1]},{empty.json()['id']}"})
    assert waiting.status_code == 409 and "has no complete trials" in waiting.json()["detail"]


def test_the_schema_documents_the_compare_refusals(api):
    """Schemathesis' positive_data_acceptance: a schema-valid id list is never a 422 for its
    length, and the 409 for studies not ready to rank is documented."""
    client, _ = api
    operation = client.get("/openapi.json").json()["paths"]["/compare"]["get"]
    assert {"404", "409", "422"} <= set(operation["responses"])
    ids = next(p for p in operation["parameters"] if p["name"] == "ids")
    assert ids["schema"]["pattern"] == r"^\d{1,10}(,\d{1,10}){2,49}$"
