"""The study spec: what data, which search space, what budget (YAML or JSON, validated by pydantic).

A searchable value is written three ways: a scalar is fixed, `[lo, hi]` is a range, any other list
(or a list of strings) is a choice. The long forms `{low, high, log, step}` and `{choices: [...]}`
say the same thing explicitly (a choice between two numbers needs `{choices: [a, b]}`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from models.config import PLACEMENTS, VARIANTS, Activation, Optimizer

MAX_TRIALS = 10_000
MAX_EPOCHS = 1_000
MAX_WIDTH = 8_192
MAX_DEPTH = 8
MAX_TIMEOUT_S = 7 * 24 * 3600
MAX_K = 16
MAX_CHOICES = 64
MAX_GRID = 100_000
MAX_BASELINES = 100
MAX_REPEATS = 20

Sampler = Literal["tpe", "random", "qmc", "gp", "grid"]
PrunerName = Literal["none", "median", "percentile", "successive_halving", "hyperband"]
Metric = Literal["val_acc", "val_loss"]
Objective = Literal[
    "val_acc",
    "val_loss",
    "gap",
    "param_count",
    "val_ece",
    "val_nll",
    "train_eval_sym_kl",
    "ms_per_1k",
]
Direction = Literal["maximize", "minimize"]
OBJECTIVE_DIRECTIONS: dict[str, str] = {
    "val_acc": "maximize",
    "val_loss": "minimize",
    "gap": "minimize",
    "param_count": "minimize",
    # Regularisation diagnostics (models/diagnostics.py), measured on the validation split.
    "val_ece": "minimize",
    "val_nll": "minimize",
    "train_eval_sym_kl": "minimize",
    "ms_per_1k": "minimize",
}
MAX_TOP_K = 50
MAX_CONSTRAINTS = 8
_CONSTRAINT = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


def parse_constraint(text: str) -> tuple[str, str, float]:
    """`"gap <= 0.05"` → ("gap", "<=", 0.05); ValueError naming what to write otherwise."""
    match = _CONSTRAINT.match(text)
    metric = match.group(1) if match else None
    if match is None or metric not in OBJECTIVE_DIRECTIONS:
        raise ValueError(
            f"{text!r} is not a constraint; write METRIC <= NUMBER or METRIC >= NUMBER with a "
            f"metric of {', '.join(OBJECTIVE_DIRECTIONS)}, e.g. 'gap <= 0.05'"
        )
    try:
        bound = float(match.group(3))
    except ValueError:
        raise ValueError(f"{text!r}: {match.group(3)!r} is not a number") from None
    if not math.isfinite(bound):
        raise ValueError(f"{text!r}: the bound must be a finite number")
    return metric, match.group(2), bound


def constraint_violation(text: str, value: float) -> float:
    """Optuna's convention: ≤ 0 is feasible (`value − bound` for <=, `bound − value` for >=)."""
    _, op, bound = parse_constraint(text)
    return value - bound if op == "<=" else bound - value


class SpecError(ValueError):
    """A spec that cannot be used; `str()` is one readable line, `errors` lists every problem."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [{"loc": "", "msg": message}]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _yaml_number(raw: Any) -> Any:
    """YAML 1.1 reads `1e-3` (no dot, no exponent sign) as a string; users mean the number."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


class Dim(_Strict):
    """One searchable number: fixed `value`, a `low..high` range, or `choices`."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
    log: bool | None = None
    step: float | None = None
    choices: list[float] | None = None
    integer: bool = Field(default=False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, raw: Any) -> Any:
        raw = _yaml_number(raw)
        if isinstance(raw, list | tuple):
            raw = [_yaml_number(x) for x in raw]
        if isinstance(raw, bool):
            raise ValueError(f"{raw} is not a number; write a number, [lo, hi] or a choice list")
        if isinstance(raw, int | float):
            return {"value": raw}
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


def _dim(raw: Any, *, integer: bool, lo: float, hi: float, hint: str) -> Dim:
    """Validate a number/range/choice against hard bounds; message names the field and a fix."""
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
    "rdrop_alpha": (False, 0.0, 100.0, "write an R-Dropout KL weight 0..100, e.g. [0.1, 5.0]"),
    "multisample_k": (
        True,
        1,
        MAX_K,
        f"write a number of samples K of 1 to {MAX_K}, e.g. [2, 4, 8]",
    ),
    "standout_alpha": (False, -100.0, 100.0, "write a Standout α between -100 and 100"),
    "standout_beta": (False, -100.0, 100.0, "write a Standout β between -100 and 100"),
    "epochs": (True, 1, MAX_EPOCHS, f"write a number of epochs between 1 and {MAX_EPOCHS}"),
    "batch_size": (True, 1, 65536, "write a batch size of 1 to 65536, e.g. {choices: [64, 128]}"),
    "lr": (False, 1e-7, 10.0, "write a learning rate 1e-7 <= lr <= 10, e.g. [1e-4, 1e-2]"),
    "weight_decay": (False, 0.0, 1.0, "write a weight decay between 0 and 1, e.g. [1e-6, 1e-3]"),
}


def _bounded(cls: type, raw: Any, info: ValidationInfo) -> Dim:
    integer, lo, hi, hint = BOUNDS[info.field_name]
    return _dim(raw, integer=integer, lo=lo, hi=hi, hint=hint)


def _as_list(raw: Any, field: str) -> list[Any]:
    # pydantic turns only ValueError into a validation error: list(None) would be a TypeError.
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{field} must be a list (or one name), not {type(raw).__name__}")
    return list(raw)


def _choice_list(raw: Any, allowed: tuple[str, ...], field: str) -> list[str]:
    values = [raw] if isinstance(raw, str) else _as_list(raw, field)
    if not values:
        raise ValueError(f"{field} is empty; write one or more of {', '.join(allowed)}")
    for v in values:
        if v not in allowed:
            raise ValueError(f"{v!r} is not one of {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{values} repeats a value; list each once")
    return values


class DatasetSpec(_Strict):
    """Which data: `digits`, `mnist1d`, `fashion-mnist`, `npz:PATH` or `csv:PATH`."""

    name: str = "digits"
    train_subset: int | None = Field(default=None, ge=10, le=10_000_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name in ("digits", "mnist1d", "fashion-mnist"):
            return name
        kind, sep, path = name.partition(":")
        if sep and kind in ("npz", "csv") and path.strip():
            return name
        raise ValueError(
            f"unknown dataset {name!r}; write digits, mnist1d, fashion-mnist, npz:PATH or csv:PATH"
        )


class ModelSpace(_Strict):
    """Depth, widths (shared or per layer, `log` for a log-scale width range) and activation."""

    depth: Dim = 2
    width: Dim = [64, 512]
    log: bool = True
    per_layer_widths: bool = False
    activation: Activation | list[Activation] = "relu"

    _bounds = field_validator("depth", "width", mode="before")(_bounded)

    @field_validator("activation")
    @classmethod
    def _activations(cls, raw: Any) -> Any:
        return (
            raw
            if isinstance(raw, str)
            else _choice_list(raw, ("relu", "gelu", "tanh"), "activation")
        )


def _placement_parts(placement: str) -> list[str]:
    return placement.split("+")


class DropoutSpace(_Strict):
    """Variants, rates and placements, and each variant's own parameters."""

    variants: list[str] = Field(default_factory=lambda: ["none", "standard"])
    rate: Dim = [0.1, 0.7]
    rate_log: bool = False
    placements: list[str] = Field(default_factory=lambda: ["hidden"])
    per_layer_rates: bool = False
    input_rate: Dim = 0.2
    rdrop_alpha: Dim = [0.1, 5.0]
    multisample_k: Dim = [2, 4, 8]
    standout_alpha: Dim = [0.5, 2.0]
    standout_beta: Dim = [-1.0, 1.0]

    _bounds = field_validator(
        "rate",
        "input_rate",
        "rdrop_alpha",
        "multisample_k",
        "standout_alpha",
        "standout_beta",
        mode="before",
    )(_bounded)

    @field_validator("variants", mode="before")
    @classmethod
    def _variants(cls, raw: Any) -> list[str]:
        return _choice_list(raw, VARIANTS, "variants")

    @field_validator("placements", mode="before")
    @classmethod
    def _placements(cls, raw: Any) -> list[str]:
        values = [raw] if isinstance(raw, str) else _as_list(raw, "placements")
        if not values:
            raise ValueError("placements is empty; write e.g. [hidden] or [hidden, input+hidden]")
        for v in values:
            parts = _placement_parts(v) if isinstance(v, str) else [v]
            bad = [p for p in parts if p not in PLACEMENTS]
            if bad or len(set(parts)) != len(parts):
                raise ValueError(
                    f"{v!r} is not a placement; write one of {', '.join(PLACEMENTS)} "
                    "or a combination joined with '+', e.g. input+hidden"
                )
        if len(set(values)) != len(values):
            raise ValueError(f"{values} repeats a placement; list each once")
        return values

    @model_validator(mode="after")
    def _log_ranges(self) -> DropoutSpace:
        if self.rate_log and self.rate.kind == "range" and self.rate.low <= 0:  # type: ignore[operator]
            raise ValueError("rate: a log range needs lo > 0; write e.g. [0.05, 0.7]")
        return self


class TrainingSpace(_Strict):
    """Epochs, batch size, optimizer, learning rate (log scale by default) and weight decay."""

    epochs: Dim = 10
    batch_size: Dim = 128
    optimizer: Optimizer | list[Optimizer] = "adam"
    lr: Dim = [1e-4, 1e-2]
    lr_log: bool = True
    weight_decay: Dim = 0.0
    weight_decay_log: bool = False
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    _bounds = field_validator("epochs", "batch_size", "lr", "weight_decay", mode="before")(_bounded)

    @field_validator("optimizer")
    @classmethod
    def _optimizers(cls, raw: Any) -> Any:
        return (
            raw
            if isinstance(raw, str)
            else _choice_list(raw, ("sgd", "adam", "adamw"), "optimizer")
        )

    @model_validator(mode="after")
    def _log_ranges(self) -> TrainingSpace:
        wd = self.weight_decay
        if _is_log(wd, self.weight_decay_log) and wd.kind == "range" and wd.low <= 0:  # type: ignore[operator]
            raise ValueError("weight_decay: a log range needs lo > 0; write e.g. [1e-6, 1e-3]")
        return self


def _is_log(dim: Dim, default: bool) -> bool:
    return default if dim.log is None else dim.log


class PrunerSpec(_Strict):
    """Which pruner; `startup_trials`/`warmup_epochs` delay pruning, `percentile` for percentile."""

    name: PrunerName = "median"
    startup_trials: int = Field(default=5, ge=0, le=MAX_TRIALS)
    warmup_epochs: int = Field(default=1, ge=0, le=MAX_EPOCHS)
    percentile: float = Field(default=25.0, gt=0.0, lt=100.0)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, raw: Any) -> Any:
        return {"name": raw} if isinstance(raw, str) else raw


class SearchSpec(_Strict):
    """Sampler, pruner, budget and what to optimize."""

    sampler: Sampler = "tpe"
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    n_trials: int = Field(default=20, ge=1, le=MAX_TRIALS)
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    seed: int | None = Field(default=0, ge=0, le=2**31 - 1)
    metric: Metric = "val_acc"
    direction: Direction | None = None
    objectives: list[Objective] | None = None
    # Feasibility: `METRIC <= x` / `METRIC >= x`; infeasible trials never count as best and
    # Optuna's samplers (TPE, NSGA-II, GP) steer away from them (Trial.set_constraint).
    constraints: list[str] = Field(default_factory=list, max_length=MAX_CONSTRAINTS)

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, raw: list[str]) -> list[str]:
        out = []
        for text in raw:
            metric, op, bound = parse_constraint(text)
            out.append(f"{metric} {op} {bound:g}")
        return out

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, raw: list[str] | None) -> list[str] | None:
        if raw is None:
            return None
        if len(raw) < 2 or len(set(raw)) != len(raw):
            raise ValueError(
                "objectives needs two or more different metrics, e.g. [val_acc, gap]; "
                "for one objective use metric instead"
            )
        return raw

    @model_validator(mode="after")
    def _pruning(self) -> SearchSpec:
        if self.objectives and self.pruner.name != "none":
            raise ValueError(
                "pruner: Optuna cannot prune multi-objective studies; write pruner: none"
            )
        return self

    def directions(self) -> list[str]:
        """Optuna study directions: one per objective."""
        if self.objectives:
            return [OBJECTIVE_DIRECTIONS[o] for o in self.objectives]
        return [self.direction or OBJECTIVE_DIRECTIONS[self.metric]]

    def objective_names(self) -> list[str]:
        return list(self.objectives) if self.objectives else [self.metric]


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class StudySpec(_Strict):
    """A whole study: name, data, search space, search settings and baseline configs."""

    name: str
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    model: ModelSpace = Field(default_factory=ModelSpace)
    dropout: DropoutSpace = Field(default_factory=DropoutSpace)
    training: TrainingSpace = Field(default_factory=TrainingSpace)
    search: SearchSpec = Field(default_factory=SearchSpec)
    baselines: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_BASELINES)
    # Seed replicates: when the search reaches n_trials, the `top_k` best distinct canonical
    # configs, and each variant's best, are trained again with `repeats` more seeds each.
    repeats: int = Field(default=0, ge=0, le=MAX_REPEATS)
    top_k: int = Field(default=3, ge=1, le=MAX_TOP_K)

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

    @model_validator(mode="after")
    def _check_space(self) -> StudySpec:
        from studyd.search import check_baselines, grid_space

        if len(self.baselines) > self.search.n_trials:
            raise ValueError(
                f"baselines: {len(self.baselines)} baselines but search.n_trials is "
                f"{self.search.n_trials}; raise n_trials or list fewer baselines"
            )
        check_baselines(self)
        if self.search.sampler == "grid":
            grid_space(self)
        return self


def _error_line(err: dict[str, Any]) -> dict[str, str]:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        parent, _, field = loc.rpartition(".")
        where = f" in {parent}" if parent else ""
        msg = f"unknown field {field!r}{where}; remove it or check the spelling"
    elif kind == "missing":
        msg = "is required; add it"
    elif kind == "literal_error":
        msg = f"{msg.replace('Input should be', 'write')} (got {err.get('input')!r})"
    elif kind in _BOUND_HINTS:
        limit = next(iter(err.get("ctx", {}).values()), "")
        msg = f"{err.get('input')!r} is {_BOUND_HINTS[kind]} {limit}; write a value within it"
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    # Model-level checks name their own field ("pruner: ..."): fold it into the location.
    named = _NAMED.match(msg)
    if named:
        loc = f"{loc}.{named.group(1)}" if loc else named.group(1)
        msg = msg[named.end() :]
    return {"loc": loc, "msg": msg}


_NAMED = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")
_BOUND_HINTS = {
    "less_than_equal": "over the limit",
    "less_than": "not below the limit",
    "greater_than_equal": "under the minimum",
    "greater_than": "not above the minimum",
    "too_long": "longer than allowed:",
}


def validate_spec(data: Any) -> StudySpec:
    """A dict (parsed YAML/JSON) → `StudySpec`, or `SpecError` with one readable line."""
    if not isinstance(data, dict):
        raise SpecError("a spec is a mapping with at least `name:`; got " + type(data).__name__)
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        errors = [_error_line(e) for e in exc.errors()]
        first = errors[0]
        head = f"{first['loc']}: {first['msg']}" if first["loc"] else first["msg"]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SpecError(head + more, errors) from None


def _is_file(text: str) -> bool:
    try:
        return Path(text).expanduser().is_file()
    except (OSError, ValueError):  # a name too long or with NUL bytes is text, not a path
        return False


def load_spec(source: str | Path | dict[str, Any]) -> StudySpec:
    """Read a spec from a path, YAML/JSON text, or an already-parsed mapping."""
    if isinstance(source, dict):
        return validate_spec(source)
    text = str(source)
    looks_like_text = "\n" in text or text.lstrip().startswith(("{", "["))
    if not looks_like_text and _is_file(text):
        text = Path(text).expanduser().read_text(encoding="utf-8")
    elif isinstance(source, Path):
        raise SpecError(f"spec file {text} does not exist")
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(f"the spec is not valid YAML or JSON: {first}") from None
    if isinstance(data, str) and "\n" not in text:
        raise SpecError(f"spec file {text} does not exist (and the text is not a YAML mapping)")
    return validate_spec(data)
