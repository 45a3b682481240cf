"""Issue 27 item 4: every integer field refuses a float, in every form a searchable value takes.

`epochs: 3.0`, `[3.0, 5.0]`, `{low: 3.0, …}` and `{choices: [1.0, 2.0]}` were accepted for the
six searchable counts and sizes (18 of 72 probe cases), and YAML `epochs: 5.0` went through
`studyd submit`. Each is now a 422 whose detail names the field, and nothing is stored.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from inprocess_app import study_count
from pydantic import BaseModel
from serve_harness import in_process_api
from typer.testing import CliRunner

from studyd.cli.main import app as cli
from studyd.client.rest import InvalidRequest
from studyd.spec import BOUNDS, Dim, StudySpec

BASE_SPEC: dict[str, Any] = {
    "name": "strict",
    "dataset": {"name": "digits"},
    "model": {"depth": 1, "width": 16},
    "dropout": {"variants": ["standard", "multisample", "dropconnect"], "placements": ["hidden"]},
    "training": {"epochs": 1, "batch_size": 32},
    "search": {"n_trials": 2},
}


def _is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        # `repeats` is a fixed integer or an auto form, each member annotated with its tag.
        return int in [_bare(a) for a in typing.get_args(annotation)]
    return False


def _bare(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def integer_fields(model: type[BaseModel] = StudySpec, prefix: str = "") -> list[tuple[str, bool]]:
    """Every integer field of the spec, found by walking it: (dotted path, searchable?)."""
    found = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        kind = info.annotation
        if kind is Dim and BOUNDS[name][0]:
            found.append((path, True))
        elif _is_int(kind):
            found.append((path, False))
        else:
            # A section may be one of several models (`model`: the MLP's or a family's).
            for member in _members(kind):
                if issubclass(member, BaseModel) and member is not Dim:
                    found += [f for f in integer_fields(member, f"{path}.") if f not in found]
    return found


def _members(annotation: Any) -> list[type]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [a for a in typing.get_args(annotation) if isinstance(a, type)]
    return [annotation] if isinstance(annotation, type) else []


SEARCHABLE = [path for path, searchable in integer_fields() if searchable]
PLAIN = [path for path, searchable in integer_fields() if not searchable]
# Every form a searchable value takes, each with a float where an integer belongs.
FLOAT_FORMS = {
    "scalar": 2.0,
    "range": [2.0, 4.0],
    "range-high": [2, 4.0],
    "long-low": {"low": 2.0, "high": 4},
    "long-step": {"low": 2, "high": 4, "step": 1.0},
    "two-choices": {"choices": [2.0, 3.0]},
    "choice-list": [2, 3.0, 4],
}
INT_FORMS = {
    "scalar": 2,
    "range": [2, 4],
    "long-step": {"low": 2, "high": 4, "step": 1},
    "two-choices": {"choices": [2, 3]},
    "choice-list": [2, 3, 4],
}


def with_value(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return spec


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('strict') / 'studyd.db'}"
    with in_process_api(url) as api:
        client = api.client
        yield client


def assert_refused_naming(client: TestClient, spec: dict[str, Any], field: str) -> None:
    before = study_count(client)
    response = client.post("/studies", json=spec)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"].startswith(f"{field}: "), body
    assert "whole number" in body["detail"], body
    assert any(e["loc"] == field for e in body["errors"]), body
    assert study_count(client) == before


def test_the_walk_finds_every_known_integer_field():
    assert set(SEARCHABLE) == {
        "model.depth",
        "model.width",
        "dropout.multisample_k",
        "dropout.dropconnect_samples",
        "training.epochs",
        "training.batch_size",
    }
    assert {"search.n_trials", "repeats", "dataset.train_subset"} <= set(PLAIN)


@pytest.mark.parametrize("form", FLOAT_FORMS)
@pytest.mark.parametrize("field", SEARCHABLE)
def test_searchable_integer_refuses_a_float_in_every_form(client, field, form):
    assert_refused_naming(client, with_value(field, FLOAT_FORMS[form]), field)


@pytest.mark.parametrize("field", PLAIN)
def test_plain_integer_refuses_a_float(client, field):
    assert_refused_naming(client, with_value(field, 20.0), field)


@pytest.mark.parametrize("form", INT_FORMS)
@pytest.mark.parametrize("field", SEARCHABLE)
def test_the_same_forms_with_integers_are_accepted(client, field, form):
    response = client.post("/studies", json=with_value(field, INT_FORMS[form]))
    assert response.status_code == 201, response.text


def test_a_baseline_refuses_a_float_for_an_integer_parameter(client):
    spec = with_value("training.epochs", [1, 3])
    spec["baselines"] = [{"epochs": 2.0}]
    assert_refused_naming(client, spec, "baselines[0].epochs")


def test_submit_refuses_yaml_epochs_written_as_a_float(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: cli-strict\ntraining:\n  epochs: 5.0\n")
    # The spec is checked before any request: no server needs to answer on this port.
    result = CliRunner().invoke(cli, ["submit", str(path), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == InvalidRequest.exit_code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "training.epochs: 5.0 is not a whole number" in lines[0]
