"""Datasets from user files: `npz:PATH` and `csv:PATH` (formats in `models.data`'s docstring)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.data_roots import DataError
from models.splits import Arrays, split_all, split_train


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{where}: float labels must be whole numbers")
        return y.astype(np.int64)
    if y.dtype.kind not in "iuUSb":
        raise DataError(f"{where}: labels of dtype {y.dtype} are not class labels")
    return y


def load_npz(path: Path, rng: np.random.Generator) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise DataError(f"{path.name}: cannot read without unpickling ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path.name} is not a readable .npz file ({exc})") from None

    def pair(split: str) -> tuple[np.ndarray, np.ndarray]:
        x, y = arrays[f"x{split}"], _labels(arrays[f"y{split}"], f"{path.name}:y{split}")
        if x.dtype.kind not in "iufb" or len(x) != len(y):
            raise DataError(f"{path.name}: x{split} must be numeric with one row per label")
        return x, y

    keys = set(arrays)
    if {"x_train", "y_train", "x_test", "y_test"} <= keys:
        train, test = pair("_train"), pair("_test")
        if {"x_val", "y_val"} <= keys:
            return train + pair("_val") + test
        return split_train(*train, rng) + test
    if {"x", "y"} <= keys:
        return split_all(*pair(""), rng)
    raise DataError(
        f"{path.name} has arrays {sorted(keys)}: expected x and y, or x_train, y_train, "
        "x_test, y_test (and optionally x_val, y_val)"
    )


def load_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path.name} is not a readable CSV file ({exc})") from None
    if rows and not _is_numeric(rows[0][:-1]):
        rows = rows[1:]  # header
    if not rows:
        raise DataError(f"{path.name} has no data rows")
    width = len(rows[0])
    if width < 2 or any(len(r) != width for r in rows):
        raise DataError(f"{path.name}: every row needs the same number (≥ 2) of columns")
    try:
        x = np.array([[float(v) for v in r[:-1]] for r in rows], dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"{path.name}: a feature is not a number ({exc})") from None
    raw = [r[-1].strip() for r in rows]
    y = np.array([float(v) for v in raw]) if _is_numeric(raw) else np.array(raw)
    return x, _labels(y, path.name)


def _is_numeric(values: Sequence[str]) -> bool:
    try:
        for v in values:
            float(v)
    except ValueError:
        return False
    return True
