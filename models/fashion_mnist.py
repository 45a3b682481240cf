"""Fashion-MNIST from the standard IDX files in the data dir, downloaded there when allowed."""

from __future__ import annotations

import gzip
import logging
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.data_roots import DataError, resolve_user_path

log = logging.getLogger(__name__)

FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
# Where fashion-mnist may sit inside the data dir: our layout, torchvision's, or flat.
FASHION_DIRS = ("fashion-mnist", "FashionMNIST/raw", ".")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or raw."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path.name}: corrupt gzip data ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path.name} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path.name}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path.name}: IDX header says {shape} ({expected} bytes) but the file has "
            f"{len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find_fashion_files(data_dir: Path, roots: Sequence[str | Path]) -> dict[str, Path] | None:
    for sub in FASHION_DIRS:
        found = {}
        for key, stem in FASHION_FILES.items():
            for candidate in (data_dir / sub / f"{stem}.gz", data_dir / sub / stem):
                if candidate.exists():
                    found[key] = resolve_user_path(candidate.absolute(), [data_dir, *roots])
                    break
        if len(found) == len(FASHION_FILES):
            return found
    return None


def _download_fashion(target: Path) -> None:
    errors = []
    for mirror in FASHION_MIRRORS:
        try:
            target.mkdir(parents=True, exist_ok=True)
            for stem in FASHION_FILES.values():
                final = target / f"{stem}.gz"
                if final.exists():
                    continue
                with urllib.request.urlopen(f"{mirror}{stem}.gz", timeout=20) as resp:
                    payload = resp.read()
                partial = final.with_suffix(".gz.part")
                partial.write_bytes(payload)
                partial.replace(final)
            return
        except OSError as exc:
            errors.append(f"{mirror}: {exc}")
    raise DataError(
        f"fashion-mnist is not in {target} and could not be downloaded ({'; '.join(errors)}); "
        f"put {', '.join(f + '.gz' for f in FASHION_FILES.values())} there"
    )


def load_fashion_mnist(data_dir: Path, roots: Sequence[str | Path], download: bool) -> dict:
    """Arrays x_train (N, 28, 28) in [0, 1], y_train, x_test, y_test from the IDX files.

    Without the files: download them (when `download`), else raise `DataError` saying where
    to put them.
    """
    files = _find_fashion_files(data_dir, roots)
    if files is None:
        target = data_dir / FASHION_DIRS[0]
        if not download:
            raise DataError(
                f"fashion-mnist files not found in {target} (downloads are off); put "
                f"{', '.join(f + '.gz' for f in FASHION_FILES.values())} there"
            )
        log.info("fashion-mnist not found in %s: downloading", target)
        _download_fashion(target)
        files = _find_fashion_files(data_dir, roots)
        if files is None:
            raise DataError(f"fashion-mnist download to {target} left files missing")
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            raise DataError(f"fashion-mnist {split}: images and labels differ in count")
    for key in ("x_train", "x_test"):
        arrays[key] = arrays[key].astype(np.float32) / 255.0
    return arrays
