"""Fashion-MNIST from the original idx files on disk, as a `DatasetDict` shaped like the Hugging Face one."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DEFAULT_FOLDER = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def fashion_mnist_folder(folder: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the four idx .gz files: `folder`, else $FASHION_MNIST_DIR, else Debian's; None if absent."""
    for cand in (folder, os.environ.get("FASHION_MNIST_DIR"), DEFAULT_FOLDER):
        if cand and all((Path(cand) / f).is_file() for pair in _FILES.values() for f in pair): return Path(cand)
    return None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An idx file (optionally gzipped) as a uint8 array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f: data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 8:
        raise ValueError(f"{path} is not an idx file of unsigned bytes (magic {data[:4].hex()}).")
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_arrays(split: str, folder: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 28, 28], labels int64 [n]) of the 'train' or 'test' split."""
    where = fashion_mnist_folder(folder)
    if where is None:
        raise FileNotFoundError(f"Fashion-MNIST idx files not found (looked in {folder or '$FASHION_MNIST_DIR'} and "
                                f"{DEFAULT_FOLDER}). On Debian/Ubuntu: apt-get install dataset-fashion-mnist; or put "
                                f"the four *-ubyte.gz files in a folder and pass it.")
    images, labels = _FILES[split]
    return read_idx(where / images), read_idx(where / labels).astype(np.int64)


def fashion_mnist_dataset_dict(folder: str | os.PathLike | None = None, n_train: int | None = None,
                               n_test: int | None = None):
    """Splits 'train' and 'test' with features 'image' (PIL, mode L) and 'label' (ClassLabel); n_* keep the first n."""
    import datasets
    from PIL import Image
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASS_NAMES)})
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = fashion_mnist_arrays(split, folder)
        if n: x, y = x[:n], y[:n]
        splits[split] = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(im) for im in x], "label": y.tolist()}, features=features)
    return datasets.DatasetDict(splits)
