"""Reading a spec (a path, YAML/JSON text or a mapping) into a `StudySpec`, or one `SpecError`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from studyd.spec.study import StudySpec


class SpecError(ValueError):
    """A spec that cannot be used; `str()` is one readable line, `errors` lists every problem."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [{"loc": "", "msg": message}]


def _error_line(err: dict[str, Any]) -> dict[str, str]:
    # Validators' and union forms' names (`form:auto`) are no place a user writes.
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "form:")))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        parent, _, field = loc.rpartition(".")
        where = f" in {parent}" if parent else ""
        msg = f"unknown field {field!r}{where}; remove it or check the spelling"
    elif kind == "missing":
        msg = "is required; add it"
    elif kind == "literal_error":
        msg = f"{msg.replace('Input should be', 'write')} (got {err.get('input')!r})"
    elif kind in _STRICT_TYPES:
        msg = f"{err.get('input')!r} is not {_STRICT_TYPES[kind]}; write a whole number, e.g. 5"
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
# Counts, sizes and seeds are strict integers (pydantic strict mode): "5", true or 5.0 are refused.
_STRICT_TYPES = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "int_parsing": "a whole number",
}
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
