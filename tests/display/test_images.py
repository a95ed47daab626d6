import matplotlib

matplotlib.use("Agg")

import datasets
import torch
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import DataLoaders, inplace, show_images

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
    dls = hf_dls()  # the names come from the label feature (tests/data/test_labels.py)
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


# ---- the original's picture helpers ----
def test_show_image_draws_channels_last_without_ticks():
    from AIsaac.all import show_image
    im = torch.rand(3, 5, 7)
    ax = show_image(im, title="x", figsize=(2, 2))
    arr = ax.images[0].get_array()
    assert arr.shape == (5, 7, 3) and abs(arr - im.permute(1, 2, 0).numpy()).max() == 0  # values as they are
    assert ax.get_title() == "x" and not ax.get_xticks().size and not ax.axison
    ax2 = show_image(torch.rand(1, 4, 4), ax=ax.figure.add_subplot(2, 2, 4), cmap="gray", noframe=False)
    assert ax2.images[0].get_array().shape == (4, 4) and ax2.images[0].get_cmap().name == "gray" and ax2.axison


def test_subplots_sizes_cells_and_always_gives_an_array():
    import numpy as np

    from AIsaac.all import subplots
    fig, axs = subplots()
    assert isinstance(axs, np.ndarray) and axs.shape == (1,) and tuple(fig.get_size_inches()) == (3, 3)
    fig, axs = subplots(2, 3, imsize=2, suptitle="t")
    assert axs.shape == (2, 3) and tuple(fig.get_size_inches()) == (6, 4) and fig._suptitle.get_text() == "t"


def test_get_grid_shapes_and_blank_cells():
    from AIsaac.all import get_grid
    fig, axs = get_grid(5)  # int(sqrt(5)) = 2 rows, ceil(5 / 2) = 3 columns
    assert axs.shape == (2, 3) and [ax.axison for ax in axs.flat] == [True] * 5 + [False]
    assert get_grid(8)[1].shape == (2, 4) and get_grid(7, ncols=2)[1].shape == (4, 2)
    assert get_grid(6, nrows=3)[1].shape == (3, 2)
    fig, _ = get_grid(4, title="grid")
    assert fig._suptitle.get_text() == "grid" and fig._suptitle.get_weight() == "bold"
    import pytest
    with pytest.raises(ValueError, match="fewer than n=5"): get_grid(5, nrows=2, ncols=2)


def test_unnormalize_undoes_normalize_for_an_image_and_a_batch():
    import pytest

    from AIsaac.all import UnNormalize
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    x = torch.rand(2, 3, 4, 4)
    m, s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    normed = (x - m) / s  # what torchvision's Normalize does
    un = UnNormalize(mean, std)
    torch.testing.assert_close(un(normed), x)
    torch.testing.assert_close(un(normed[0]), x[0])
    torch.testing.assert_close(UnNormalize(0.28, 0.35)((x[:, :1] - 0.28) / 0.35), x[:, :1])  # Fashion-MNIST's one
    assert torch.equal(normed, (x - m) / s)  # the input is left as it is
    with pytest.raises(ValueError, match="channels"): un(torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="one value per channel"): UnNormalize([0.5, 0.5], [1.0])
