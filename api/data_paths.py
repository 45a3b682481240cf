"""The `npz:`/`csv:` file a spec names, checked when the study is submitted.

The path must stay inside the data roots: `..`, URL-encoded, absolute and symlinked escapes are
refused. When this server can see the data roots (one of them is a directory here), the file must
also be there and readable: a missing file used to be accepted and the study failed later, on a
worker, while `status` still showed its trials waiting. An API-only node that has no data roots
lets the path through; each worker checks it again against its own roots.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np

# models.data_roots, not models.data: the latter imports torch (~250 MiB resident, seconds to
# load under load), which the API process never needs.
from models.data_roots import DataError, resolve_user_path
from studyd.spec import SpecError, StudySpec

# Where the roots come from, named in every refusal so the reader knows what to change.
ROOTS_SETTING = "STUDYD_DATA_ROOTS (a JSON list; STUDYD_DATA_DIR when empty)"


def check_data_path(spec: StudySpec, roots: list[Path]) -> None:
    """SpecError (422, `dataset.name`) for a data file outside the roots, missing or unreadable."""
    kind, sep, raw = spec.dataset.name.partition(":")
    if not sep or kind not in ("npz", "csv"):
        return
    try:
        for text in {raw, unquote(raw)}:
            _check_inside(text, roots)
        if any(root.is_dir() for root in roots):
            _check_readable(raw, roots)
    except OSError as exc:  # e.g. ENAMETOOLONG: the client's path, not the server, is wrong
        reason = exc.strerror or type(exc).__name__
        message = f"data path of {len(raw)} characters cannot be opened: {reason}"
    except _Refused as exc:
        message = str(exc)
    else:
        return
    where = ", ".join(str(r) for r in roots)
    named = f" ({where})" if where not in message else ""
    message += f"; data files go in the data roots{named}, set by {ROOTS_SETTING}"
    raise SpecError(f"dataset.name: {message}", [{"loc": "dataset.name", "msg": message}])


class _Refused(ValueError):
    """A data path this server will not take; the message is completed by `check_data_path`."""


def _check_inside(text: str, roots: list[Path]) -> None:

    candidate = Path(text)
    missing = not any(
        (c.exists() or c.is_symlink())
        for c in ([candidate] if candidate.is_absolute() else [r / candidate for r in roots])
    )
    escapes = (
        ".." in candidate.parts
        or "\x00" in text
        or (candidate.is_absolute() and not any(candidate.is_relative_to(r) for r in roots))
    )
    if missing and not escapes:
        # A symlinked directory inside a root leads out even to a file not there yet.
        if not _lands_inside(candidate, roots):
            raise _Refused(f"data path {text!r} resolves outside the allowed data roots")
        return
    try:
        resolve_user_path(text, roots)
    except DataError as exc:
        raise _Refused(str(exc)) from None


def _check_readable(text: str, roots: list[Path]) -> None:

    try:
        real = resolve_user_path(text, roots)
    except DataError as exc:
        raise _Refused(str(exc)) from None
    try:
        with real.open("rb"):  # a regular file (resolve_user_path checked), so this cannot block
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _Refused(f"data file {text!r} cannot be read by the server: {reason}") from None


def _lands_inside(candidate: Path, roots: list[Path]) -> bool:
    """Whether each lookup of `candidate` (symlinks in its existing part followed) stays inside."""
    lookups = [candidate] if candidate.is_absolute() else [r / candidate for r in roots]
    return all(any(c.resolve().is_relative_to(r) for r in roots) for c in lookups)


def input_features(spec: StudySpec, roots: list[Path]) -> int | None:
    """Features per example of the spec's npz:/csv: file, read from its header; None if unknown."""

    kind, sep, raw = spec.dataset.name.partition(":")
    if not sep or kind not in ("npz", "csv"):
        return None
    try:
        path = resolve_user_path(raw, roots)
        if kind == "csv":
            with path.open(encoding="utf-8", errors="replace") as fh:
                return fh.readline(1 << 20).count(",")  # the last column is the label
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for member in ("x_train.npy", "x.npy"):
                if member in names:
                    with archive.open(member) as fh:
                        shape = _npy_shape(fh)
                    return int(np.prod(shape[1:])) if len(shape) > 1 else None
    except (DataError, OSError, ValueError, zipfile.BadZipFile):
        return None  # the worker reports a file it cannot read; the size check uses the rest
    return None


def _npy_shape(fh: object) -> tuple[int, ...]:
    version = np.lib.format.read_magic(fh)  # type: ignore[arg-type]
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _, _ = read(fh)  # type: ignore[arg-type]
    return tuple(shape)
