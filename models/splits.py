"""Stratified, seeded train/validation/test splits of numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

VAL_FRACTION = 0.2
TEST_FRACTION = 0.2

Arrays = tuple[np.ndarray, ...]


def split_indices(y: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> list:
    """Stratified split: each class contributes round(n_c·f) rows to each fraction's part;
    the rest go to the first part (train)."""
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        start = 0
        sizes = [int(round(len(idx) * f)) for f in fractions]
        for k, size in enumerate(sizes, start=1):
            parts[k].append(idx[start : start + size])
            start += size
        parts[0].append(idx[start:])
    return [rng.permutation(np.concatenate(p)) for p in parts]


def split_all(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Arrays:
    """(x_train, y_train, x_val, y_val, x_test, y_test): 60/20/20, stratified."""
    train, val, test = split_indices(y, [VAL_FRACTION, TEST_FRACTION], rng)
    return x[train], y[train], x[val], y[val], x[test], y[test]


def split_train(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Arrays:
    """(x_train, y_train, x_val, y_val): 80/20, stratified, for data with its own test split."""
    train, val = split_indices(y, [VAL_FRACTION], rng)
    return x[train], y[train], x[val], y[val]
