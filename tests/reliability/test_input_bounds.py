"""Issue 9 item 4: hostile input is refused at the door, readably, and nothing of it is run.

Against the app `studyd serve --no-workers` runs (in this process, over SQLite): specs are
bounded (422 naming the field), unknown fields are refused, bodies over the limit get 413
(declared or streamed), pages are capped, and `npz:`/`csv:` paths that leave the data roots
(`..`, URL-encoded, absolute, symlinks) are 422 at submit time. Below the API: data files are
read without unpickling, fashion-mnist's IDX files are bounded by the roots too, YAML specs
cannot construct objects, and no module under our packages unpickles, `eval`s or imports
anything a client names.
"""

from __future__ import annotations

import ast
import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_harness import REPO, Api, in_process_api

from models.data import DataError, load_dataset
from studyd.spec import MAX_BASELINES, MAX_CHOICES, SpecError, load_spec

BASE_SPEC: dict[str, Any] = {
    "name": "bounds",
    "dataset": {"name": "digits"},
    "dropout": {"variants": ["standard"], "placements": ["hidden"]},
    "training": {"epochs": 1},
    "search": {"n_trials": 2},
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data root holding one good file, plus files and links that lead outside it."""
    base = tmp_path_factory.mktemp("data")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)).astype(np.float32), np.arange(60) % 3
    np.savez(root / "inside.npz", x=x, y=y)
    np.savez(outside / "secret.npz", x=x, y=y)
    (outside / "secret.csv").write_text("1,2,0\n3,4,1\n")
    (root / "link.npz").symlink_to(outside / "secret.npz")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_root) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path_factory.mktemp('bounds-server') / 'studyd.db'}"
    with in_process_api(url, data_roots=[data_root], max_body_bytes=65536) as api:
        yield api


def with_value(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    spec["name"] = f"bounds-{uuid.uuid4().hex[:8]}"
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return spec


def study_count(server: Api) -> int:
    return server.client.get("/studies", params={"limit": 1}).json()["total"]


def assert_422_naming(response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in body["detail"], body
    assert any(e["loc"] == field for e in body["errors"]), body


OUT_OF_BOUNDS = [
    ("search.n_trials", 10_001),
    ("search.n_trials", 0),
    ("search.timeout", 10**9),
    ("search.timeout", -1),
    ("training.epochs", 1_001),
    ("training.epochs", [1, 5_000]),
    ("training.batch_size", 10**6),
    ("model.width", [16, 100_000]),
    ("model.width", 0),
    ("model.depth", 9),
    ("model.width", list(range(1, MAX_CHOICES + 2))),
    ("dropout.rate", 0.99),
    ("dropout.multisample_k", [2, 64]),
    ("dataset.train_subset", 10**9),
    ("repeats", 1_000),
    ("name", "x" * 500),
    ("baselines", [{"variant": "standard"}] * (MAX_BASELINES + 1)),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_BOUNDS, ids=lambda v: str(v)[:24])
def test_out_of_bounds_spec_is_422_naming_the_field(server, field, value):
    before = study_count(server)
    assert_422_naming(server.client.post("/studies", json=with_value(field, value)), field)
    assert study_count(server) == before


# Issue 15 item 10: counts and sizes are strict integers ("5" ran 5 trials, true ran 1).
LOOSE_TYPES = [
    ("search.n_trials", "5"),
    ("search.n_trials", True),
    ("search.n_trials", 5.0),
    ("search.pruner.startup_trials", "3"),
    ("model.width", "64"),
    ("model.width", [True, 64]),
    ("model.depth", {"low": "1", "high": 3}),
    ("training.batch_size", "64"),
    ("training.epochs", ["1", "2", "3"]),
    ("dataset.train_subset", "100"),
    ("repeats", True),
]


@pytest.mark.parametrize(("field", "value"), LOOSE_TYPES, ids=lambda v: str(v)[:24])
def test_counts_and_sizes_are_strict_integers(server, field, value):
    before = study_count(server)
    response = server.client.post("/studies", json=with_value(field, value))
    assert_422_naming(response, field)
    assert "whole number" in response.json()["detail"], response.json()
    assert study_count(server) == before


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"name": ', "line 1, column 10"),
        (b'{"name":\n  "x"\n  "search": {}}', "line 3, column 3"),
    ],
)
def test_truncated_json_names_line_and_column(server, body, where):
    response = server.client.post(
        "/studies", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"body: invalid JSON at {where}: "), response.json()


def test_spec_too_big_to_train_is_422_naming_field_size_and_setting(server):
    # Issue 15 item 6: `model: {width: 8192, depth: 8}` was accepted and a worker reached 8.6 GB.
    before = study_count(server)
    spec = with_value("model", {"width": 8192, "depth": 8})
    response = server.client.post("/studies", json=spec)
    assert_422_naming(response, "model.width")
    detail = response.json()["detail"]
    assert "GB" in detail and "STUDYD_MAX_TRAIN_BYTES" in detail, detail
    assert study_count(server) == before
    # The same shape at a size a small machine trains is fine.
    ok = server.client.post("/studies", json=with_value("model", {"width": 512, "depth": 2}))
    assert ok.status_code == 201, ok.text


def test_wide_data_file_counts_in_the_size_check(server, data_root):
    # 200 000 features into 2048 units: the first layer alone is 6.6 GB to train.
    np.savez_compressed(
        data_root / "wide.npz", x=np.zeros((60, 200_000), np.uint8), y=np.arange(60) % 3
    )
    spec = with_value("dataset.name", "npz:wide.npz")
    spec["model"] = {"width": 2048, "depth": 1}
    assert_422_naming(server.client.post("/studies", json=spec), "model.width")
    spec["dataset"]["name"] = "npz:inside.npz"  # 4 features: small
    assert server.client.post("/studies", json=spec).status_code == 201


def test_train_memory_limit_is_a_setting(tmp_path):
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    with in_process_api(url, max_train_bytes=20_000_000) as srv:
        spec = with_value("model", {"width": 256, "depth": 1})
        spec["training"]["batch_size"] = 65536  # activations dominate: the batch is named
        response = srv.client.post("/studies", json=spec)
        assert_422_naming(response, "training.batch_size")
        assert "20.0 MB" in response.json()["detail"], response.json()
        small = srv.client.post("/studies", json=with_value("model", {"width": 64, "depth": 1}))
        assert small.status_code == 201, small.text


def test_grid_search_space_over_the_limit_is_422(server):
    spec = with_value("search.sampler", "grid")
    spec["model"] = {"width": list(range(1, 61)), "depth": [1, 2, 3, 4, 5, 6, 7, 8]}
    spec["dropout"]["rate"] = [round(0.01 * i, 2) for i in range(1, 61)]
    spec["training"]["batch_size"] = list(range(1, 61))
    response = server.client.post("/studies", json=spec)
    assert response.status_code == 422, response.text
    assert "grid" in response.json()["detail"] or "search" in response.json()["detail"]


@pytest.mark.parametrize("body", [b"\xff\xfe{", b'{"name": ', b"[1, 2]", b"null"])
def test_malformed_bodies_are_422_not_400_or_500(server, body):
    response = server.client.post(
        "/studies", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "path", ["bogus", "model.bogus", "dropout.variant", "search.sampler_kwargs", "dataset.path"]
)
def test_unknown_fields_are_refused(server, path):
    assert_422_naming(server.client.post("/studies", json=with_value(path, 1)), path)


def test_body_over_the_limit_is_413_declared_or_streamed(server, figure):
    limit = 65536
    big = b'{"name": "' + b"a" * (limit + 10) + b'"}'
    declared = server.client.post(
        "/studies", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413, declared.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    streamed = server.client.post(
        "/studies", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    # The dashboard's JSON API is behind the same limit.
    dashboard = server.client.post("/api/studies", content=big)
    assert dashboard.status_code == 413, dashboard.text
    # Just under the limit reaches validation (a 422 for a bad name), not a 413.
    under = b'{"name": "' + b"a" * (limit - 100) + b'"}'
    assert server.client.post("/studies", content=under).status_code == 422
    figure(body_limit=limit, declared=declared.status_code, streamed=streamed.status_code)


def test_page_sizes_are_capped(server):
    study = server.client.post("/studies", json=with_value("search.n_trials", 3)).json()
    for path in ("/studies", f"/studies/{study['id']}/trials"):
        page = server.client.get(path, params={"limit": 100_000})
        assert page.status_code == 200, page.text
        assert page.json()["limit"] == 500
        for bad in ({"limit": 0}, {"limit": 10**12}, {"offset": -1}, {"limit": "all"}):
            assert server.client.get(path, params=bad).status_code == 422, (path, bad)


ESCAPES = [
    "../outside/secret.npz",
    "sub/../../outside/secret.npz",
    "%2e%2e/outside/secret.npz",
    "%2E%2E%2Foutside%2Fsecret.npz",
    "..%2foutside%2fsecret.npz",
    "{outside}/secret.npz",
    "{outside}/not-there.npz",
    "/etc/passwd",
    "link.npz",
    "linkdir/secret.npz",
    "linkdir/not-there.npz",
    "inside.npz\x00.csv",
]


@pytest.mark.parametrize("kind", ["npz", "csv"])
@pytest.mark.parametrize("raw", ESCAPES)
def test_data_paths_that_leave_the_roots_are_422_at_submit(server, data_root, kind, raw):
    path = raw.format(outside=data_root.parent / "outside")
    before = study_count(server)
    response = server.client.post("/studies", json=with_value("dataset.name", f"{kind}:{path}"))
    assert_422_naming(response, "dataset.name")
    assert study_count(server) == before


def test_data_paths_inside_the_roots_are_accepted(server, data_root):
    for name in ("npz:inside.npz", f"npz:{data_root / 'inside.npz'}"):
        response = server.client.post("/studies", json=with_value("dataset.name", name))
        assert response.status_code == 201, (name, response.text)


@pytest.mark.parametrize("name", ["npz:mydata.npz", "csv:later/arrives.csv", "npz:a-directory"])
def test_missing_or_unreadable_data_file_is_422_naming_roots_and_setting(server, data_root, name):
    # Issue 15 item 9: `npz:mydata.npz` (absent) was 201 and the study failed later on a worker.
    (data_root / "a-directory").mkdir(exist_ok=True)
    before = study_count(server)
    response = server.client.post("/studies", json=with_value("dataset.name", name))
    assert_422_naming(response, "dataset.name")
    detail = response.json()["detail"]
    assert str(data_root) in detail and "STUDYD_DATA_ROOTS" in detail, detail
    assert study_count(server) == before


def test_data_file_the_server_cannot_read_is_422(server, data_root):
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    locked = data_root / "locked.npz"
    locked.write_bytes((data_root / "inside.npz").read_bytes())
    locked.chmod(0)
    try:
        response = server.client.post("/studies", json=with_value("dataset.name", "npz:locked.npz"))
        assert_422_naming(response, "dataset.name")
        assert "cannot be read" in response.json()["detail"]
    finally:
        locked.chmod(0o644)


def test_data_path_is_let_through_where_the_server_cannot_see_the_roots(tmp_path):
    # An API-only node without the data: workers elsewhere have the roots and check again.
    url = f"sqlite:///{tmp_path / 'studyd.db'}"
    with in_process_api(url, data_roots=[tmp_path / "on-the-workers-only"]) as srv:
        response = srv.client.post("/studies", json=with_value("dataset.name", "npz:there.npz"))
        assert response.status_code == 201, response.text
        escape = srv.client.post("/studies", json=with_value("dataset.name", "npz:../x.npz"))
        assert_422_naming(escape, "dataset.name")


@pytest.mark.parametrize("length", [300, 5000])
@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_data_paths_too_long_for_the_filesystem_are_one_line_422(server, kind, length):
    before = study_count(server)
    response = server.client.post(
        "/studies", json=with_value("dataset.name", f"{kind}:" + "a" * length)
    )
    assert_422_naming(response, "dataset.name")
    detail = response.json()["detail"]
    assert "\n" not in detail and len(detail) < 300, detail
    assert study_count(server) == before


@pytest.mark.parametrize("path", ["/static/bundle.js", "/dashboard"])
def test_dashboard_assets_load_without_accept_encoding(server, path):
    request = server.client.build_request("GET", path)
    del request.headers["accept-encoding"]  # curl and some proxies send none
    response = server.client.send(request)
    assert response.status_code == 200, response.text[:300]
    assert response.headers.get("content-encoding") in (None, "identity")
    assert len(response.content) > 100


def test_npz_with_pickled_objects_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    objects = np.empty(2, dtype=object)
    objects[:] = [Payload(), Payload()]
    np.savez(tmp_path / "evil.npz", x=objects, y=np.array([0, 1]))
    with pytest.raises(DataError, match="unpickling"):
        load_dataset("npz:evil.npz", data_dir=tmp_path, data_roots=[tmp_path])
    assert not marker.exists()


def test_fashion_mnist_idx_links_out_of_the_roots_are_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "fashion-mnist").mkdir(parents=True)
    outside.mkdir()
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (outside / stem).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
        (root / "fashion-mnist" / stem).symlink_to(outside / stem)
    with pytest.raises(DataError, match="outside"):
        load_dataset("fashion-mnist", data_dir=root, data_roots=[root], download=False)


def test_yaml_specs_cannot_construct_objects(tmp_path):
    marker = tmp_path / "pwned"
    text = f"name: x\ndataset: !!python/object/apply:pathlib.Path.touch [{marker}]\n"
    with pytest.raises(SpecError):
        load_spec(text)
    assert not marker.exists()


# Calls that turn bytes or names from outside into code or objects.
FORBIDDEN_CALLS = {
    "pickle.load",
    "pickle.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "dill.load",
    "dill.loads",
    "marshal.loads",
    "joblib.load",
    "yaml.load",
    "yaml.unsafe_load",
    "yaml.full_load",
    "importlib.import_module",
    "__import__",
    "eval",
    "exec",
}


def _call_name(node: ast.Call) -> str:
    func = node.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def test_no_code_path_unpickles_or_imports_client_data():
    found = []
    for package in ("api", "models", "storage", "studyd"):
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = _call_name(node)
                where = f"{path.relative_to(REPO)}:{node.lineno} {name}"
                if name in FORBIDDEN_CALLS:
                    found.append(where)
                keywords = {k.arg: k.value for k in node.keywords}
                if name.endswith("torch.load") and not _is_true(keywords.get("weights_only")):
                    found.append(where + " without weights_only=True")
                if name.endswith(("np.load", "numpy.load")) and _is_true(
                    keywords.get("allow_pickle")
                ):
                    found.append(where + " with allow_pickle=True")
    assert not found, found


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True
