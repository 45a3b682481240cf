"""The study spec: shorthand forms, bounds and one-line messages that say what to write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studyd.spec import SpecError, StudySpec, load_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_every_example_loads_and_round_trips_through_json():
    assert {p.name for p in EXAMPLES} >= {"d2l.yaml", "cs231n.yaml", "shootout.yaml"}
    for path in EXAMPLES:
        spec = load_spec(path)
        again = load_spec(json.dumps(spec.model_dump(mode="json")))
        assert again == spec, path.name


def test_shootout_example_covers_every_variant():
    from models.config import VARIANTS

    spec = load_spec(Path(EXAMPLES[0]).parent / "shootout.yaml")
    assert set(spec.dropout.variants) == set(VARIANTS)


def test_scalar_is_fixed_pair_is_range_longer_list_is_choice():
    spec = load_spec(
        "name: s\nmodel: {depth: 2, width: [32, 64]}\n"
        "training: {batch_size: [32, 64, 128], lr: {choices: [0.001, 0.01]}}"
    )
    assert spec.model.depth.kind == "fixed"
    assert spec.model.width.kind == "range"
    assert spec.training.batch_size.kind == "choice"
    assert spec.training.lr.kind == "choice"
    dumped = spec.model_dump(mode="json")
    assert dumped["model"]["width"] == [32, 64]
    assert dumped["training"]["batch_size"] == [32, 64, 128]
    assert dumped["training"]["lr"] == {"choices": [0.001, 0.01]}


def test_yaml_exponents_without_a_dot_are_numbers():
    spec = load_spec("name: s\ntraining: {lr: [1e-4, 1e-2], weight_decay: 1e-5}")
    assert spec.training.lr.low == 1e-4 and spec.training.weight_decay.value == 1e-5


def test_json_text_and_dict_are_accepted():
    assert load_spec('{"name": "j"}').name == "j"
    assert load_spec({"name": "d", "dataset": "mnist1d"}).dataset.name == "mnist1d"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: {}", "name: is required"),
        ("name: s\nmodle: {}", "unknown field 'modle'"),
        ("name: s\nmodel: {depht: 2}", "model.depht: unknown field 'depht' in model"),
        ("name: s\nmodel: {width: [16, 10000]}", "model.width: 10000 is outside 1..8192"),
        ("name: s\nmodel: {depth: 9}", "model.depth: 9 is outside 1..8; write a depth"),
        ("name: s\nmodel: {depth: 1.5}", "model.depth: 1.5 is not a whole number"),
        ("name: s\nmodel: {width: [64, 32]}", "model.width: range [64.0, 32.0] is empty"),
        ("name: s\ndropout: {rate: [0.1, 1.0]}", "dropout.rate: 1 is outside 0..0.95"),
        ("name: s\ndropout: {multisample_k: [2, 32]}", "dropout.multisample_k: 32 is outside"),
        ("name: s\ndropout: {variants: [standard, bogus]}", "'bogus' is not one of none, "),
        ("name: s\ndropout: {placements: [input+top]}", "or a combination joined with '+'"),
        ("name: s\ntraining: {epochs: 5000}", "training.epochs: 5000 is outside 1..1000"),
        ("name: s\nsearch: {n_trials: 20000}", "search.n_trials: 20000 is over the limit 10000"),
        ("name: s\nsearch: {timeout: 1000000000}", "search.timeout: 1000000000 is over the limit"),
        ("name: s\nsearch: {sampler: cmaes}", "search.sampler: write 'tpe', 'random'"),
        ("name: s\nsearch: {pruner: asha}", "search.pruner.name: write 'none', 'median'"),
        ("name: s\nsearch: {sampler: grid}", "search.sampler: grid needs a finite space but"),
        (
            "name: s\nsearch: {objectives: [val_acc, gap]}",
            "search.pruner: Optuna cannot prune multi-objective studies; write pruner: none",
        ),
        ("name: s\nsearch: {objectives: [val_acc]}", "objectives needs two or more"),
        ("name: s\nbaselines: [{rate: 0.99}]", "baselines[0].rate: 0.99 is outside dropout.rate"),
        ("name: s\nbaselines: [{widht: 3}]", "baselines[0].widht: unknown parameter; use one of"),
        ("name: s\nbaselines: [{epochs: 3}]", "baselines[0].epochs: training.epochs is fixed"),
        ("name: 'a b'", "name: 'a b' is not a study name"),
        ("name: s\ndataset: imagenet", "dataset.name: unknown dataset 'imagenet'; write digits"),
        ("name: s\ntraining: {weight_decay: {low: 0, high: 0.1, log: true}}", "needs lo > 0"),
        ("name: s\nsearch: {n_trials: 1}\nbaselines: [{}, {}]", "raise n_trials or list fewer"),
        ("name: s\nrepeats: 50", "repeats: 50 is over the limit 20"),
        ("name: s\nrepeats: {auto: true, max_seeds: 2}", "repeats.max_seeds: 2 is under the"),
        ("name: s\nrepeats: {max_seeds: 9}", "repeats.auto: is required"),
        ("name: s\nrepeats: {auto: false}", "repeats.auto: write True (got False)"),
        ("[1, 2", "the spec is not valid YAML or JSON"),
        ("- a\n- b\n", "a spec is a mapping"),
    ],
)
def test_invalid_specs_give_one_line_naming_the_field(text, expected):
    with pytest.raises(SpecError) as info:
        load_spec(text)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert info.value.errors and all("loc" in e and "msg" in e for e in info.value.errors)


def test_grid_is_allowed_when_every_dimension_is_finite():
    spec = load_spec(
        "name: g\nmodel: {depth: [1, 2], width: {choices: [16, 32]}}\n"
        "dropout: {variants: [none, standard], rate: [0.2, 0.4, 0.6]}\n"
        "training: {lr: 0.01}\nsearch: {sampler: grid, pruner: none}"
    )
    assert spec.search.sampler == "grid"


def test_missing_spec_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_directions_follow_metric_and_objectives():
    assert load_spec("name: a").search.directions() == ["maximize"]
    assert load_spec("name: a\nsearch: {metric: val_loss}").search.directions() == ["minimize"]
    multi = load_spec("name: a\nsearch: {objectives: [val_acc, param_count], pruner: none}")
    assert multi.search.directions() == ["maximize", "minimize"]


def test_spec_model_rejects_unknown_fields_in_every_section():
    for section in ("dataset", "model", "dropout", "training", "search"):
        with pytest.raises(SpecError, match="unknown field 'zzz'"):
            StudySpec.model_validate  # noqa: B018 - the public entry point is load_spec
            load_spec({"name": "x", section: {"zzz": 1}})


def test_repeats_fixed_keeps_its_form_and_auto_has_its_own():
    fixed = load_spec("name: s\nrepeats: 3")
    assert fixed.model_dump()["repeats"] == 3 and fixed.auto_repeats is None
    assert fixed.first_repeats == 3
    auto = load_spec("name: s\nrepeats: {auto: true, max_seeds: 8}")
    assert auto.model_dump()["repeats"] == {"auto": True, "max_seeds": 8, "margin": 0.01}
    assert (auto.auto_repeats.max_seeds, auto.first_repeats) == (8, 3)
    assert load_spec(auto.model_dump()) == auto  # a stored spec reads back the same
