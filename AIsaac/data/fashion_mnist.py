"""`fashion_mnist_dataset_dict`: Fashion-MNIST from its four local idx files, shaped like the Hugging Face dataset."""
from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.args import whole_number

DEFAULT_FOLDER = "/usr/share/datasets/fashion-mnist"
# The class names exactly as load_dataset('fashion_mnist') spells them, so code written for either source agrees.
CLASS_NAMES = ("T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def hf_modules(owner: str, extra: str = "hf") -> tuple[Any, Any]:
    """(datasets, PIL.Image), or an ImportError naming `owner` and `extra`, the extra that installs them."""
    try:
        with warnings.catch_warnings():
            # datasets imports tqdm.auto, which in a kernel without ipywidgets warns (from a line of the machine's
            # site-packages) that datasets' own bars will be text. AIsaac's calls of datasets draw no bar and its
            # own bars are HTML without widgets, so the warning would only be noise in the user's first cell.
            warnings.filterwarnings("ignore", message="IProgress not found")
            import datasets
        from PIL import Image
    except ImportError as e:
        raise ImportError(f"{owner} builds a Hugging Face DatasetDict of PIL images, which needs the `datasets` and "
                          f"`Pillow` packages (missing: {e.name}): pip install 'aisaac[{extra}]'") from e
    return datasets, Image


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):  # the .gz files as distributed, or the same files unpacked
        if (folder / name).is_file(): return folder / name
    return None


def read_idx(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """The unsigned-byte array stored in an idx file (gzipped or not); `limit` keeps the first rows only."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
            raise ValueError(f"{path} is not an idx file of unsigned bytes (its first bytes are {head!r}); "
                             f"expected the Fashion-MNIST files as published, e.g. train-images-idx3-ubyte.gz.")
        shape = [int.from_bytes(f.read(4), "big") for _ in range(head[3])]
        if limit is not None: shape[0] = min(shape[0], limit)
        count = int(np.prod(shape))
        data = f.read(count)  # reading only the rows asked for keeps small subsets fast
    if len(data) != count:
        raise ValueError(f"{path} is truncated: its header promises {count} bytes for shape {shape} but only "
                         f"{len(data)} follow; download the file again.")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def fashion_mnist_dataset_dict(folder: str | os.PathLike | None = None, n_train: int | None = None,
                               n_test: int | None = None):
    """Fashion-MNIST as a `datasets.DatasetDict` like `load_dataset('fashion_mnist')`, read from local idx files.

    Splits 'train' (60,000 rows) and 'test' (10,000); features 'image' (PIL, mode L, 28x28) and 'label'
    (ClassLabel with the ten class names). `n_train`/`n_test` keep the first rows of a split, for quick runs.
    `folder` defaults to $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist (Debian's
    dataset-fashion-mnist package).
    """
    datasets, Image = hf_modules("fashion_mnist_dataset_dict")
    folder = Path(folder if folder is not None else os.environ.get("FASHION_MNIST_DIR", DEFAULT_FOLDER))
    n_train = whole_number("n_train", n_train, owner="fashion_mnist_dataset_dict", what="rows kept", none="all rows")
    n_test = whole_number("n_test", n_test, owner="fashion_mnist_dataset_dict", what="rows kept", none="all rows")
    stems = [s for pair in _FILES.values() for s in pair]
    missing = [s + ".gz" for s in stems if _find(folder, s) is None]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found in {folder} (missing: {', '.join(missing)}). Install them with "
            f"`apt-get install dataset-fashion-mnist` (Debian/Ubuntu, into {DEFAULT_FOLDER}), or download the four "
            f"idx .gz files from https://github.com/zalandoresearch/fashion-mnist and pass folder=... "
            f"(or set FASHION_MNIST_DIR).")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASS_NAMES))})
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images_stem, labels_stem = _FILES[split]
        images_path, labels_path = _find(folder, images_stem), _find(folder, labels_stem)
        assert images_path is not None and labels_path is not None  # checked above: none is missing
        images, labels = read_idx(images_path, n), read_idx(labels_path, n)
        if len(images) != len(labels):
            raise ValueError(f"The {split} split of {folder} has {len(images)} images but {len(labels)} labels; "
                             f"the files do not belong together, download them again.")
        splits[split] = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(im) for im in images], "label": labels.astype(np.int64).tolist()},
            features=features)
    return datasets.DatasetDict(splits)


def fashion_mnist_folder(folder: str | os.PathLike | None = None) -> Path | None:
    """The first of `folder`, $FASHION_MNIST_DIR and Debian's folder that holds all four files; None when none does."""
    for cand in (folder, os.environ.get("FASHION_MNIST_DIR"), DEFAULT_FOLDER):
        if cand and all(_find(Path(cand), s) for pair in _FILES.values() for s in pair): return Path(cand)
    return None
