"""Spec fields for the verdict: diagnostic objectives, constraints, repeats and top_k."""

from __future__ import annotations

import pytest

from studyd.spec import SpecError, constraint_violation, load_spec


def test_diagnostics_are_objectives_minimised_and_constraints_are_normalised():
    spec = load_spec(
        "name: e\nsearch: {objectives: [val_acc, val_ece, ms_per_1k], pruner: none,"
        " constraints: ['gap<=0.05', ' val_acc >= 9e-1 ']}\nrepeats: 3\ntop_k: 2"
    )
    assert spec.search.directions() == ["maximize", "minimize", "minimize"]
    assert spec.search.constraints == ["gap <= 0.05", "val_acc >= 0.9"]
    assert (spec.repeats, spec.top_k) == (3, 2)
    assert constraint_violation("gap <= 0.05", 0.08) == pytest.approx(0.03)
    assert constraint_violation("val_acc >= 0.9", 0.95) == pytest.approx(-0.05)


@pytest.mark.parametrize("bad", ["gap < 0.05", "acc <= 1", "gap <= nan", "gap <= x"])
def test_a_bad_constraint_names_the_field_and_the_form_to_write(bad):
    with pytest.raises(SpecError) as err:
        load_spec({"name": "e", "search": {"constraints": [bad]}})
    assert str(err.value).startswith("search.constraints")
