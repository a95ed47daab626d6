import gzip
import os

import numpy as np
import pytest

from AIsaac.data.fashion_mnist import CLASS_NAMES, DEFAULT_FOLDER, fashion_mnist_dataset_dict, read_idx


def write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with (gzip.open if gz else open)(path, "wb") as f: f.write(head + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for stem, n in (("train", 7), ("t10k", 3)):
        x, y = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", x)
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", y)
        arrays[stem] = (x, y)
    return tmp_path, arrays


def test_shaped_like_the_hugging_face_dataset(tiny_folder):
    folder, arrays = tiny_folder
    dd = fashion_mnist_dataset_dict(folder)
    assert list(dd) == ["train", "test"] and dd["train"].num_rows == 7 and dd["test"].num_rows == 3
    assert dd["train"].features["label"].names == list(CLASS_NAMES) and len(CLASS_NAMES) == 10
    for split, stem in (("train", "train"), ("test", "t10k")):
        x, y = arrays[stem]
        for i, row in enumerate(dd[split]):
            assert row["image"].mode == "L" and row["image"].size == (28, 28)
            np.testing.assert_array_equal(np.asarray(row["image"]), x[i])
            assert row["label"] == y[i]


def test_subsets_keep_the_first_rows(tiny_folder):
    folder, arrays = tiny_folder
    dd = fashion_mnist_dataset_dict(folder, n_train=2, n_test=1)
    assert dd["train"].num_rows == 2 and dd["test"].num_rows == 1
    assert dd["train"]["label"] == arrays["train"][1][:2].tolist()


def test_unpacked_files_work_too(tmp_path):
    for stem in ("train", "t10k"):
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte", np.full((2, 28, 28), 5), gz=False)
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte", np.array([1, 2]), gz=False)
    assert fashion_mnist_dataset_dict(tmp_path)["test"]["label"] == [1, 2]


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as e:
        fashion_mnist_dataset_dict(tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(e.value) and str(tmp_path) in str(e.value)


def test_folder_from_environment(tiny_folder, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tiny_folder[0]))
    assert fashion_mnist_dataset_dict(n_test=2)["test"].num_rows == 2


def test_bad_files_and_arguments_are_reported(tmp_path, tiny_folder):
    (tmp_path / "junk.gz").write_bytes(gzip.compress(b"not an idx file"))
    with pytest.raises(ValueError, match="not an idx file"): read_idx(tmp_path / "junk.gz")
    write_idx(tmp_path / "short.gz", np.zeros((4, 3)))
    (tmp_path / "cut.gz").write_bytes(gzip.compress(gzip.decompress((tmp_path / "short.gz").read_bytes())[:-2]))
    with pytest.raises(ValueError, match="truncated"): read_idx(tmp_path / "cut.gz")
    with pytest.raises(ValueError, match="n_train"): fashion_mnist_dataset_dict(tiny_folder[0], n_train=0)


@pytest.mark.skipif(not os.path.isdir(DEFAULT_FOLDER), reason="dataset-fashion-mnist is not installed")
def test_real_files(monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    dd = fashion_mnist_dataset_dict(n_train=5, n_test=5)
    # The first training image of Fashion-MNIST is an ankle boot (label 9), the first test one too.
    assert dd["train"][0]["label"] == 9 and dd["test"][0]["label"] == 9
    assert np.asarray(dd["train"][0]["image"]).shape == (28, 28)


def test_folder_lookup_order(tmp_path, monkeypatch):
    import AIsaac.data.fashion_mnist as fm
    monkeypatch.setattr(fm, "DEFAULT_FOLDER", str(tmp_path / "none"))
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    assert fm.fashion_mnist_folder(tmp_path) is None
    for stem in [s for pair in fm._FILES.values() for s in pair]: (tmp_path / f"{stem}.gz").write_bytes(b"")
    assert fm.fashion_mnist_folder(tmp_path) == tmp_path
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    assert fm.fashion_mnist_folder() == tmp_path
