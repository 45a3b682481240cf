"""User data paths stay inside the configured data roots; `DataError` for any dataset problem.

Kept apart from `models.data` (which imports torch) so the dataset readers and the API's path
checks can use them without a cycle or torch's start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DataError(ValueError):
    """A dataset that cannot be named, found, read or split."""


def resolve_user_path(path: str | Path, roots: Sequence[str | Path]) -> Path:
    """The real path of an existing file `path` inside one of `roots`, or `DataError`.

    A relative path is looked up under each root in order; an absolute one must lie inside a
    root. `..` components are refused outright, and symlinks are followed before the check, so a
    link inside a root that points outside it is refused too.
    """
    text = str(path)
    if not text or "\x00" in text:
        raise DataError(f"invalid data path {text!r}")
    if not roots:
        raise DataError("no data roots are configured: user data paths cannot be read")
    candidate = Path(text)
    if ".." in candidate.parts:
        raise DataError(f"data path {text!r} may not contain '..'")
    real_roots = [Path(r).expanduser().resolve() for r in roots]
    tries = [candidate] if candidate.is_absolute() else [root / candidate for root in real_roots]
    for attempt in tries:
        if not attempt.exists() and not attempt.is_symlink():
            continue
        real = attempt.resolve()
        if not any(real.is_relative_to(root) for root in real_roots):
            raise DataError(f"data path {text!r} resolves outside the allowed data roots")
        if not real.is_file():
            raise DataError(f"data path {text!r} is not a file")
        return real
    where = ", ".join(str(r) for r in real_roots)
    if candidate.is_absolute():
        raise DataError(f"data path {text!r} is outside the allowed data roots ({where})")
    raise DataError(f"data file {text!r} not found under the data roots ({where})")
