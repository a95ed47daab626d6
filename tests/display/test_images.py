import matplotlib

matplotlib.use("Agg")

import datasets
import torch
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import DataLoaders, inplace, show_images
from AIsaac.display.images import class_names

NAMES = ["cat", "dog", "bird"]


def hf_dls(n=12, bs=6):
    feats = datasets.Features({"image": datasets.Array2D((4, 4), "float32"),
                               "label": datasets.ClassLabel(names=NAMES)})
    ds = datasets.Dataset.from_dict({"image": torch.rand(n, 4, 4).tolist(), "label": [i % 3 for i in range(n)]},
                                    features=feats)

    @inplace
    def to_tensor(b): b["image"] = [torch.tensor(o)[None] for o in b["image"]]

    dd = datasets.DatasetDict({"train": ds, "test": ds}).with_transform(to_tensor)
    return DataLoaders.from_dataset_dict(dd, bs)


def titles(fig): return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_show_batch_uses_class_names(tmp_path):
    dls = hf_dls()
    assert class_names(dls.train) == NAMES
    torch.manual_seed(0)
    first = next(iter(dls.train))
    torch.manual_seed(0)
    fig = dls.show_batch(n=4)
    assert titles(fig) == [NAMES[int(v)] for v in first[1][:4]]
    assert sum(len(ax.images) for ax in fig.axes) == 4
    fig.savefig(tmp_path / "batch.png")
    assert (tmp_path / "batch.png").stat().st_size > 0


def test_show_batch_numbers_without_features():
    x, y = torch.rand(5, 3, 8, 8), torch.tensor([4, 1, 0, 2, 3])
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=5), DataLoader(TensorDataset(x, y), batch_size=5))
    fig = dls.show_batch(n=9)  # asks for more than the batch has
    assert titles(fig) == ["4", "1", "0", "2", "3"]
    assert sum(len(ax.images) for ax in fig.axes) == 5
    # Colour images are drawn height x width x channels, stretched into [0, 1].
    arr = fig.axes[0].images[0].get_array()
    assert arr.shape == (8, 8, 3) and arr.min() >= 0 and arr.max() <= 1


def test_show_images_grid_shape():
    fig = show_images([torch.zeros(4, 4)] * 5, ncols=2)
    assert len(fig.axes) == 6 and sum(len(ax.images) for ax in fig.axes) == 5
