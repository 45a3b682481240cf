"""Spec fields for the verdict: diagnostic objectives, constraints, repeats and top_k."""

from __future__ import annotations

import pytest

from studyd.analysis.counted import feasible_candidates
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


def test_feasibility_is_the_configurations_judged_on_its_search_trial():
    def trial(number, feasible, replicate_of=None):
        attrs = {} if replicate_of is None else {"replicate_of": replicate_of}
        return {"number": number, "feasible": feasible, "user_attrs": attrs}

    trials = [
        trial(0, True),
        trial(1, False),
        trial(2, True, replicate_of=0),
        trial(3, False, replicate_of=0),  # its seed broke a seed-dependent bound: still counts
        trial(4, True, replicate_of=1),  # an infeasible config's lucky seed: does not
        trial(5, False, replicate_of=9),  # its search trial is not here: judged on its own
    ]
    assert [t["number"] for t in feasible_candidates(trials)] == [0, 2, 3]
