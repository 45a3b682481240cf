"""The study spec: what data, which search space, what budget (YAML or JSON, validated by pydantic).

A searchable value is written three ways: a scalar is fixed, `[lo, hi]` is a range, any other list
(or a list of strings) is a choice. The long forms `{low, high, log, step}` and `{choices: [...]}`
say the same thing explicitly (a choice between two numbers needs `{choices: [a, b]}`).

`limits` holds the hard limits, `dims` one searchable number and its bounds, `spaces` the
dataset/model/dropout/training sections, `search_settings` the `search:` section, `study` the
whole `StudySpec`, `loading` reading one (`load_spec`, `validate_spec`, `SpecError`),
`parameters` the Optuna parameters a spec produces, and `footprint` the memory it needs.
"""

from studyd.spec.dims import BOUNDS, Dim
from studyd.spec.dims import is_log as _is_log
from studyd.spec.limits import (
    MAX_BASELINES,
    MAX_CHOICES,
    MAX_CONSTRAINTS,
    MAX_DEPTH,
    MAX_EPOCHS,
    MAX_GRID,
    MAX_K,
    MAX_REPEATS,
    MAX_TIMEOUT_S,
    MAX_TOP_K,
    MAX_TRIALS,
    MAX_WIDTH,
)
from studyd.spec.loading import SpecError, load_spec, validate_spec
from studyd.spec.search_settings import (
    OBJECTIVE_DIRECTIONS,
    Direction,
    Metric,
    Objective,
    PrunerName,
    PrunerSpec,
    Sampler,
    SearchSpec,
    constraint_violation,
    parse_constraint,
)
from studyd.spec.spaces import DatasetSpec, DropoutSpace, ModelSpace, TrainingSpace
from studyd.spec.study import StudySpec

__all__ = [
    "BOUNDS",
    "MAX_BASELINES",
    "MAX_CHOICES",
    "MAX_CONSTRAINTS",
    "MAX_DEPTH",
    "MAX_EPOCHS",
    "MAX_GRID",
    "MAX_K",
    "MAX_REPEATS",
    "MAX_TIMEOUT_S",
    "MAX_TOP_K",
    "MAX_TRIALS",
    "MAX_WIDTH",
    "OBJECTIVE_DIRECTIONS",
    "DatasetSpec",
    "Dim",
    "Direction",
    "DropoutSpace",
    "Metric",
    "ModelSpace",
    "Objective",
    "PrunerName",
    "PrunerSpec",
    "Sampler",
    "SearchSpec",
    "SpecError",
    "StudySpec",
    "TrainingSpace",
    "_is_log",  # studyd.daemon.search's import of it predates this package
    "constraint_violation",
    "load_spec",
    "parse_constraint",
    "validate_spec",
]
