"""One searchable number (`Dim`: fixed, range or choices) and each field's hard bounds."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from models.variants import KNOBS
from studyd.spec.limits import MAX_CHOICES, MAX_DEPTH, MAX_EPOCHS, MAX_WIDTH


class StrictModel(BaseModel):
    """The base of every spec section: unknown fields are errors; values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _yaml_number(raw: Any) -> Any:
    """YAML 1.1 reads `1e-3` (no dot, no exponent sign) as a string; users mean the number."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


class Dim(StrictModel):
    """One searchable number: fixed `value`, a `low..high` range, or `choices`."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
    log: bool | None = None
    step: float | None = None
    choices: list[float] | None = None
    # Set by the field's bounds (`_dim`), never by the user: `{value: 0.001, integer: true}` for
    # lr was stored as 0. Not part of the spec's schema, never serialised.
    integer: SkipJsonSchema[bool] = Field(default=False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, raw: Any) -> Any:
        raw = _yaml_number(raw)
        if isinstance(raw, list | tuple):
            raw = [_yaml_number(x) for x in raw]
        if isinstance(raw, bool) or (
            isinstance(raw, list | tuple) and any(isinstance(x, bool) for x in raw)
        ):
            raise ValueError(f"{raw} is not a number; write a number, [lo, hi] or a choice list")
        if isinstance(raw, int | float):
            return {"value": raw}
        if isinstance(raw, dict) and "integer" in raw:
            raise ValueError("unknown field 'integer'; write a number, [lo, hi] or a choice list")
        if isinstance(raw, list | tuple):
            if len(raw) == 0:
                raise ValueError("an empty list; write a number, [lo, hi] or a choice list")
            if len(raw) == 2:
                return {"low": raw[0], "high": raw[1]}
            return {"choices": list(raw)}
        return raw

    @model_validator(mode="after")
    def _check(self) -> Dim:
        given = [self.value is not None, self.low is not None, self.choices is not None]
        if sum(given) != 1:
            raise ValueError("write a number, a range [lo, hi] ({low, high}) or {choices: [...]}")
        if (self.low is None) != (self.high is None):
            raise ValueError("a range needs both low and high: write [lo, hi]")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(
                f"range [{self.low}, {self.high}] is empty; write [lo, hi] with lo < hi"
            )
        if self.choices is not None:
            if len(self.choices) > MAX_CHOICES:
                raise ValueError(f"{len(self.choices)} choices is over the limit {MAX_CHOICES}")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"choices {self.choices} repeat a value; list each value once")
        if self.step is not None and (self.low is None or self.step <= 0):
            raise ValueError("step is only for a range and must be > 0")
        if self.log and self.step is not None:
            raise ValueError("a log range cannot have a step; drop one of them")
        return self

    @model_serializer
    def _to_shorthand(self) -> Any:
        num = int if self.integer else float
        if self.value is not None:
            return num(self.value)
        if self.choices is not None:
            values = [num(c) for c in self.choices]
            return {"choices": values} if len(values) == 2 else values
        if self.log is None and self.step is None:
            return [num(self.low), num(self.high)]
        out: dict[str, Any] = {"low": num(self.low), "high": num(self.high)}
        if self.log is not None:
            out["log"] = self.log
        if self.step is not None:
            out["step"] = num(self.step)
        return out

    @property
    def kind(self) -> Literal["fixed", "range", "choice"]:
        if self.value is not None:
            return "fixed"
        return "choice" if self.choices is not None else "range"

    def values(self) -> list[float]:
        """Every value this dimension can take (fixed, choices, or values in the range)."""
        if self.value is not None:
            return [self.value]
        if self.choices is not None:
            return list(self.choices)
        return [self.low, self.high]  # type: ignore[list-item]

    def contains(self, x: float) -> bool:
        if self.kind == "range":
            return self.low <= x <= self.high  # type: ignore[operator]
        return x in self.values()


def _written_numbers(raw: Any) -> list[Any]:
    """The numbers as the user wrote them: a scalar, a list, or the long form's values."""
    if isinstance(raw, dict):
        values = [raw.get(k) for k in ("value", "low", "high", "step")]
        return [v for v in values if v is not None] + _written_numbers(raw.get("choices") or [])
    return list(raw) if isinstance(raw, list | tuple) else [raw]


def _check_whole_numbers(raw: Any, hint: str) -> None:
    # Counts and sizes are strict: "5" or true read as 5 or 1 hid typos (a quoted YAML value, a
    # flag in the wrong field), and 5.0 is a float where a count belongs (a computed value, or a
    # rate typed in the wrong field), so only integers as JSON/YAML write them are taken.
    for x in _written_numbers(raw):
        if isinstance(x, str | bool):
            raise ValueError(f"{x!r} is not a whole number; {hint}")
        if isinstance(x, float):
            raise ValueError(f"{x!r} is not a whole number (drop the decimal point); {hint}")


def _dim(raw: Any, *, integer: bool, lo: float, hi: float, hint: str) -> Dim:
    """Validate a number/range/choice against hard bounds; message names the field and a fix."""
    if integer and not isinstance(raw, Dim):
        _check_whole_numbers(raw, hint)
    dim = raw if isinstance(raw, Dim) else Dim.model_validate(raw)
    for x in dim.values():
        if integer and not float(x).is_integer():
            raise ValueError(f"{x} is not a whole number; {hint}")
        if not lo <= x <= hi or math.isnan(x):
            raise ValueError(f"{x:g} is outside {lo:g}..{hi:g}; {hint}")
    if integer:
        dim = dim.model_copy(update={"integer": True})
    if integer and dim.step is not None and not float(dim.step).is_integer():
        raise ValueError(f"step {dim.step} is not a whole number; {hint}")
    return dim


# Each searchable number's hard bounds: field → (whole numbers?, lowest, highest, what to write).
BOUNDS: dict[str, tuple[bool, float, float, str]] = {
    "depth": (True, 1, MAX_DEPTH, f"write a depth of 1 to {MAX_DEPTH} hidden layers, e.g. [1, 3]"),
    "width": (True, 1, MAX_WIDTH, f"write widths between 1 and {MAX_WIDTH}, e.g. [64, 512]"),
    "rate": (False, 0.0, 0.95, "write a dropout rate 0 <= p <= 0.95, e.g. [0.1, 0.7]"),
    "input_rate": (False, 0.0, 0.95, "write a dropout rate 0 <= p <= 0.95, e.g. [0.1, 0.3]"),
    # Each variant's own knobs: their bounds are the registry's (models/variants.py).
    **{k.name: (k.integer, k.low, k.high, k.hint) for k in KNOBS if not k.choices},
    "epochs": (True, 1, MAX_EPOCHS, f"write a number of epochs between 1 and {MAX_EPOCHS}"),
    "batch_size": (True, 1, 65536, "write a batch size of 1 to 65536, e.g. {choices: [64, 128]}"),
    "lr": (False, 1e-7, 10.0, "write a learning rate 1e-7 <= lr <= 10, e.g. [1e-4, 1e-2]"),
    "weight_decay": (False, 0.0, 1.0, "write a weight decay between 0 and 1, e.g. [1e-6, 1e-3]"),
}


# Public for the families' own fields (`studyd.spec.family_space`).
checked_dim = _dim


def bounded(cls: type, raw: Any, info: ValidationInfo) -> Dim:
    """A `field_validator` body: the field's value as a `Dim` within its `BOUNDS`."""
    integer, lo, hi, hint = BOUNDS[info.field_name]
    return _dim(raw, integer=integer, lo=lo, hi=hi, hint=hint)


def is_log(dim: Dim, default: bool) -> bool:
    """Whether a range is searched on a log scale: its own `log`, else the section's default."""
    return default if dim.log is None else dim.log
