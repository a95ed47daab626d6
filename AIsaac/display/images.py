"""`show_images`: a grid of images titled with their class names (what `DataLoaders.show_batch` draws)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..data.loaders import DictCollate


def _as_image(im: Any) -> tuple[Any, bool]:
    """An image as a (H, W) or (H, W, C) array for imshow, and whether it is single-channel."""
    # Tensors are channels-first (PyTorch's convention); arrays channels-last unless only the first dim fits.
    channels_first = isinstance(im, torch.Tensor)
    im = torch.as_tensor(im).detach().cpu().float()
    if im.ndim == 3 and im.shape[0] in (1, 3, 4) and (channels_first or im.shape[-1] not in (1, 3, 4)):
        im = im.permute(1, 2, 0)
    if im.ndim == 3 and im.shape[-1] == 1: im = im[..., 0]
    if im.ndim == 3:  # colour: imshow clips floats to [0, 1], so stretch each (normalised) image into that range
        lo, hi = im.min(), im.max()
        im = (im - lo) / (hi - lo) if hi > lo else torch.zeros_like(im)
    return im.numpy(), im.ndim == 2


def show_images(images: Sequence[Any], titles: Sequence[str] | None = None, ncols: int | None = None,
                figsize: tuple[float, float] | None = None, cmap: str | None = "gray"):
    """Draw `images` ((C,H,W), (H,W,C) or (H,W) tensors or arrays) in a grid; returns the matplotlib figure.

    Single-channel images use `cmap`; colour images are each stretched to [0, 1] so normalised inputs show.
    """
    import matplotlib.pyplot as plt
    n = len(images)
    if n == 0: raise ValueError("show_images: no images to show.")
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize or (2 * ncols, 2 * nrows), squeeze=False)
    for i, ax in enumerate(axs.flat):
        ax.set_axis_off()
        if i >= n: continue
        im, gray = _as_image(images[i])
        ax.imshow(im, cmap=cmap if gray else None)
        if titles is not None: ax.set_title(str(titles[i]), fontsize=9)
    fig.tight_layout()
    return fig


def class_names(dl: Any) -> list[str] | None:
    """The class names of a loader's labels (a Hugging Face `ClassLabel` feature's `.names`), or None."""
    features = getattr(getattr(dl, "dataset", None), "features", None)
    if not features: return None
    keys = list(getattr(getattr(dl, "collate_fn", None), "keys", ()) or ())
    # With DictCollate the label is batch position 1; otherwise take the first ClassLabel feature there is.
    candidates = [keys[1]] if isinstance(getattr(dl, "collate_fn", None), DictCollate) and len(keys) > 1 else list(features)
    for k in candidates:
        names = getattr(features.get(k), "names", None)
        if names: return list(names)
    return None


def label_titles(labels: Any, names: Sequence[str] | None, n: int) -> list[str] | None:
    """Titles for the first `n` labels: class names when known, else the label numbers; None for non-scalar labels."""
    if labels is None: return None
    labels = torch.as_tensor(labels).detach().cpu()[:n]
    if labels.ndim != 1: return None
    if names is not None and not labels.is_floating_point() and all(0 <= int(v) < len(names) for v in labels):
        return [names[int(v)] for v in labels]
    return [f"{v:g}" if isinstance(v, float) else str(v) for v in labels.tolist()]

