"""The Fashion-MNIST reader: idx parsing on made-up files, and the real files when installed."""
import gzip

import numpy as np
import pytest

from AIsaac.data import fashion_mnist as fm


def write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f: f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def fake_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 5)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return tmp_path


def test_reads_idx_and_builds_a_dataset_dict_like_the_hubs(fake_folder):
    x, y = fm.fashion_mnist_arrays("train", fake_folder)
    assert x.shape == (12, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    dd = fm.fashion_mnist_dataset_dict(fake_folder, n_train=10)
    assert {k: len(v) for k, v in dd.items()} == {"train": 10, "test": 5}
    item = dd["train"][3]
    assert item["image"].mode == "L" and item["image"].size == (28, 28)
    assert np.array_equal(np.asarray(item["image"]), x[3]) and item["label"] == y[3]
    assert dd["train"].features["label"].names[0] == "T - shirt / top"


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "DEFAULT_FOLDER", str(tmp_path / "none"))
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fm.fashion_mnist_arrays("train", tmp_path)


def test_not_an_idx_file(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"hello world!"))
    with pytest.raises(ValueError, match="not an idx file"):
        fm.read_idx(tmp_path / "x.gz")


@pytest.mark.skipif(fm.fashion_mnist_folder() is None, reason="Fashion-MNIST files not installed (CI installs them)")
def test_real_files():
    x, y = fm.fashion_mnist_arrays("test")
    assert x.shape == (10000, 28, 28) and sorted(set(y.tolist())) == list(range(10))
