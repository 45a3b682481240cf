"""`StudySpec`: a whole study, its sections checked against each other."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from studyd.spec.dims import StrictModel
from studyd.spec.family_space import FamilySpace, check_family_dropout, model_section
from studyd.spec.limits import MAX_BASELINES, MAX_REPEATS, MAX_TOP_K
from studyd.spec.repeats import AutoRepeats, repeats_form
from studyd.spec.search_settings import SearchSpec
from studyd.spec.spaces import DatasetSpec, DropoutSpace, ModelSpace, TrainingSpace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class StudySpec(StrictModel):
    """A whole study: name, data, search space, search settings and baseline configs."""

    # The validator below checks the pattern with a readable message; the schema states it too,
    # so that a schema-valid name is never refused.
    name: str = Field(
        json_schema_extra={"pattern": _NAME.pattern, "minLength": 1, "maxLength": 100}
    )
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    model: ModelSpace | FamilySpace = Field(default_factory=ModelSpace)
    dropout: DropoutSpace = Field(default_factory=DropoutSpace)
    training: TrainingSpace = Field(default_factory=TrainingSpace)
    search: SearchSpec = Field(default_factory=SearchSpec)
    baselines: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_BASELINES)
    # Seed replicates: when the search reaches n_trials, the `top_k` best distinct canonical
    # configs, and each variant's best, are trained again with `repeats` more seeds each; or,
    # `{auto: true, max_seeds: N}`, round by round until the verdict is decided (`repeats`).
    repeats: Annotated[
        Annotated[int, Field(ge=0, le=MAX_REPEATS, strict=True), Tag("form:fixed")]
        | Annotated[AutoRepeats, Tag("form:auto")],
        Discriminator(repeats_form),
    ] = 0
    top_k: int = Field(default=3, ge=1, le=MAX_TOP_K, strict=True)

    @property
    def auto_repeats(self) -> AutoRepeats | None:
        return self.repeats if isinstance(self.repeats, AutoRepeats) else None

    @property
    def first_repeats(self) -> int:
        """The seeds every chosen configuration gets first: all of them when `repeats` is fixed."""
        auto = self.auto_repeats
        return auto.first_seeds if auto is not None else int(self.repeats)  # type: ignore[arg-type]

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                f"{name!r} is not a study name; use 1-100 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        return name

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_shorthand(cls, raw: Any) -> Any:
        return {"name": raw} if isinstance(raw, str) else raw

    @field_validator("model", mode="wrap")
    @classmethod
    def _model_family(cls, raw: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # The section's family picks its class, so errors name that class's fields alone.
        return model_section(raw) if isinstance(raw, dict) else handler(raw)

    @model_validator(mode="after")
    def _check_space(self) -> StudySpec:
        from studyd.spec.parameters import check_baselines, grid_space

        check_family_dropout(self.model, self.dropout)
        if len(self.baselines) > self.search.n_trials:
            raise ValueError(
                f"baselines: {len(self.baselines)} baselines but search.n_trials is "
                f"{self.search.n_trials}; raise n_trials or list fewer baselines"
            )
        check_baselines(self)
        if self.search.sampler == "grid":
            grid_space(self)
        return self
