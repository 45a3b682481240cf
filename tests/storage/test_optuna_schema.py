"""Our mirror of Optuna's private schema against a real RDBStorage on every backend.

`storage.optuna_schema` reads and writes Optuna's tables directly; an Optuna release that renames
or retypes one of the columns it relies on must fail here, not in a page of the API.
"""

from __future__ import annotations

import math

import optuna
import pytest
import sqlalchemy as sa

# Optuna's private models, imported here only: the pins below compare our mirror with them.
from optuna.storages._rdb.models import TrialIntermediateValueModel, TrialValueModel
from optuna.study import StudyDirection
from optuna.trial import TrialState

from storage import optuna_schema
from storage.optuna_schema import OPTUNA_METADATA, intermediate_to_stored, stored_value

# The SQLAlchemy type each declared column must have in the database Optuna created.
_AFFINITY: tuple[tuple[type[sa.types.TypeEngine], tuple[type[sa.types.TypeEngine], ...]], ...] = (
    (sa.Enum, (sa.Enum, sa.String)),  # SQLite reflects Optuna's enums as VARCHAR
    (sa.Integer, (sa.Integer,)),
    (sa.Float, (sa.Float, sa.Numeric)),
    (sa.DateTime, (sa.DateTime,)),
    (sa.String, (sa.String,)),  # Text is a String
)


def _expected(declared: sa.types.TypeEngine) -> tuple[type[sa.types.TypeEngine], ...]:
    return next(found for kind, found in _AFFINITY if isinstance(declared, kind))


@pytest.fixture
def optuna_tables(db_url, optuna_storage) -> dict[str, dict[str, sa.types.TypeEngine]]:
    """Every table and column type of the database a real RDBStorage created."""
    inspector = sa.inspect(optuna_storage.engine)
    return {
        table: {c["name"]: c["type"] for c in inspector.get_columns(table)}
        for table in inspector.get_table_names()
    }


def test_every_declared_column_exists_in_optunas_schema_with_its_type(optuna_tables):
    for table in OPTUNA_METADATA.sorted_tables:
        assert table.name in optuna_tables, f"Optuna has no table {table.name}"
        for column in table.columns:
            found = optuna_tables[table.name].get(column.name)
            assert found is not None, f"Optuna's {table.name} has no column {column.name}"
            assert isinstance(found, _expected(column.type)), (
                f"{table.name}.{column.name} is {found!r} in Optuna's schema, "
                f"declared as {column.type!r}"
            )


def test_declared_enums_have_optunas_names_and_members(optuna_storage):
    python_enums = {
        "trialstate": TrialState,
        "studydirection": StudyDirection,
        "trialvaluetype": TrialValueModel.TrialValueType,
        "trialintermediatevaluetype": TrialIntermediateValueModel.TrialIntermediateValueType,
    }
    declared = {
        column.type.name: list(column.type.enums)
        for table in OPTUNA_METADATA.sorted_tables
        for column in table.columns
        if isinstance(column.type, sa.Enum)
    }
    assert set(declared) == set(python_enums)
    for name, members in python_enums.items():
        assert sorted(declared[name]) == sorted(members.__members__), name
    if optuna_storage.engine.dialect.name == "postgresql":
        with optuna_storage.engine.connect() as conn:
            labels = conn.execute(
                sa.text(
                    "SELECT t.typname, e.enumlabel FROM pg_type t "
                    "JOIN pg_enum e ON e.enumtypid = t.oid"
                )
            ).all()
        in_database: dict[str, list[str]] = {}
        for typname, label in labels:
            in_database.setdefault(typname, []).append(label)
        for name, members in declared.items():
            assert sorted(in_database.get(name, [])) == sorted(members), name


def test_a_trial_written_by_optuna_reads_back_through_the_mirror(optuna_storage):
    study = optuna.create_study(storage=optuna_storage, study_name="pinned")
    trial = study.ask()
    trial.suggest_float("rate", 0.1, 0.7)
    trial.set_user_attr("variant", "gaussian")
    optuna_storage.set_trial_system_attr(trial._trial_id, "constraints:size", 0.5)
    for step, value in enumerate((0.5, math.inf, -math.inf)):
        trial.report(value, step)
    study.tell(trial, -math.inf)
    t = optuna_schema
    with optuna_storage.engine.connect() as conn:
        study_id = t.optuna_study_id(conn, "pinned")
        row = conn.execute(sa.select(t.trials).where(t.trials.c.study_id == study_id)).one()
        assert (row.number, t.enum_name(row.state)) == (0, "COMPLETE")
        assert row.datetime_start is not None and row.datetime_complete is not None
        value = conn.execute(sa.select(t.trial_values)).one()
        assert stored_value(value.value, value.value_type) == -math.inf
        steps = conn.execute(
            sa.select(t.trial_intermediate_values).order_by(t.trial_intermediate_values.c.step)
        ).all()
        assert [stored_value(s.intermediate_value, s.intermediate_value_type) for s in steps] == [
            0.5,
            math.inf,
            -math.inf,
        ]
        params, attrs = t.params_and_attrs(conn, [row.trial_id], None)
        assert params == {row.trial_id: {"rate": trial.params["rate"]}}
        assert attrs == {row.trial_id: {"variant": "gaussian"}}
        system = conn.execute(sa.select(t.trial_system_attributes)).one()
        assert (system.key, system.value_json) == ("constraints:size", "0.5")
        direction = conn.execute(sa.select(t.study_directions.c.direction)).scalar_one()
        assert t.enum_name(direction) == "MINIMIZE"


@pytest.mark.parametrize("value", [0.25, -3.0, math.inf, -math.inf, math.nan])
def test_intermediate_values_are_encoded_as_optuna_encodes_them(value):
    stored, kind = TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
    assert intermediate_to_stored(value) == (stored, kind.name)
