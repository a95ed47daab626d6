"""Pictures: `show_image` (one image on an axis), `subplots` and `get_grid` (grids of axes sized for images),
`show_images` (a grid of images titled with their class names: what `DataLoaders.show_batch` draws), and
`UnNormalize` (undo a normalisation for display)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from ..runtime.args import whole_number


def _as_image(im: Any, stretch: bool = True) -> tuple[Any, bool]:
    """An image as a (H, W) or (H, W, C) array for imshow, and whether it is single-channel.

    `stretch`: colour images are each stretched into [0, 1] (imshow clips floats to that range, so normalised
    inputs would show as noise otherwise).
    """
    # Tensors are channels-first (PyTorch's convention); arrays and PIL images channels-last unless only the first
    # dim fits.
    channels_first = isinstance(im, torch.Tensor)
    im = im.detach().cpu() if channels_first else torch.as_tensor(np.asarray(im))
    if im.dtype == torch.bool or not (im.is_floating_point() or im.dtype == torch.uint8): im = im.float()
    if im.ndim == 3 and im.shape[0] in (1, 3, 4) and (channels_first or im.shape[-1] not in (1, 3, 4)):
        im = im.permute(1, 2, 0)
    if im.ndim == 3 and im.shape[-1] == 1: im = im[..., 0]
    if im.ndim not in (2, 3):
        raise ValueError(f"An image must be (H, W), (C, H, W) or (H, W, C); got a shape of {tuple(im.shape)}.")
    if im.ndim == 3 and stretch:
        im = im.float()
        lo, hi = im.min(), im.max()
        im = (im - lo) / (hi - lo) if hi > lo else torch.zeros_like(im)
    return im.float().numpy() if im.is_floating_point() else im.numpy(), im.ndim == 2


def show_image(im: Any, ax: Any = None, figsize: tuple[float, float] | None = None, title: str | None = None,
               noframe: bool = True, **imshow_kwargs: Any):
    """Draw one image (a (C,H,W) or (H,W) tensor, a (H,W,C) or (H,W) array, or a PIL image) on `ax` (default: a new
    figure of `figsize`), with `title`, without ticks (and without frame if `noframe`); returns the axis.

    Tensors are detached and moved to the CPU; colour values are drawn as they are (imshow clips floats to [0, 1]:
    undo a normalisation first, with `UnNormalize`). `imshow_kwargs` go to `ax.imshow` (cmap, origin, ...).
    """
    import matplotlib.pyplot as plt
    arr, _ = _as_image(im, stretch=False)
    if ax is None: _, ax = plt.subplots(figsize=figsize)
    ax.imshow(arr, **imshow_kwargs)
    if title is not None: ax.set_title(str(title))
    ax.set_xticks([])
    ax.set_yticks([])
    if noframe: ax.axis("off")
    return ax


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, imsize: float = 3,
             suptitle: str | None = None, **kwargs: Any):
    """`plt.subplots` sized for images: (fig, axs), each cell `imsize` inches unless `figsize` is given.

    `axs` is always a numpy array (for a single cell, of one axis), so `axs.flat` works for every shape;
    `kwargs` go to `plt.subplots` (squeeze, sharex, ...).
    """
    import matplotlib.pyplot as plt
    nrows = whole_number("nrows", nrows, owner="subplots", what="rows of axes")
    ncols = whole_number("ncols", ncols, owner="subplots", what="columns of axes")
    if figsize is None: figsize = (ncols * imsize, nrows * imsize)
    from .figure import ShownOnceFigure
    kwargs.setdefault("FigureClass", ShownOnceFigure)  # a notebook shows it once (see AIsaac.display.figure)
    fig, axs = plt.subplots(nrows, ncols, figsize=figsize, **kwargs)
    if suptitle is not None: fig.suptitle(suptitle)
    if not isinstance(axs, np.ndarray): axs = np.array([axs])
    return fig, axs


def get_grid(n: int, nrows: int | None = None, ncols: int | None = None, title: str | None = None,
             weight: str = "bold", size: int = 14, **kwargs: Any):
    """A grid of at least `n` axes: (fig, axs); the cells past `n` are blank.

    `nrows` defaults to `int(sqrt(n))` and `ncols` to `ceil(n / nrows)` (or `nrows` to `ceil(n / ncols)` when only
    `ncols` is given). `title` is the figure's title, in `weight` and `size`; `kwargs` go to `subplots` (figsize,
    imsize, ...).
    """
    n = whole_number("n", n, owner="get_grid", what="axes")
    if nrows is None:
        nrows = max(1, int(math.sqrt(n))) if ncols is None else math.ceil(n / ncols)
    if ncols is None: ncols = math.ceil(n / nrows)
    if nrows * ncols < n:
        raise ValueError(f"get_grid: {nrows} rows x {ncols} columns hold {nrows * ncols} axes, fewer than n={n}; "
                         f"give more rows or columns, or leave one of them out to have it computed.")
    fig, axs = subplots(nrows, ncols, **kwargs)
    for ax in axs.flat[n:]: ax.set_axis_off()
    if title is not None: fig.suptitle(title, weight=weight, size=size)
    return fig, axs


def show_images(images: Sequence[Any], titles: Sequence[str] | None = None, ncols: int | None = None,
                figsize: tuple[float, float] | None = None, cmap: str | None = "gray", nrows: int | None = None):
    """Draw `images` ((C,H,W), (H,W,C) or (H,W) tensors or arrays) in a grid; returns the matplotlib figure.

    Single-channel images use `cmap`; colour images are each stretched to [0, 1] so normalised inputs show.
    The grid is `ncols` wide (default: about square) and as many rows as needed (or `nrows`).
    """
    n = len(images)
    if n == 0: raise ValueError("show_images: no images to show.")
    if ncols is None: ncols = math.ceil(n / nrows) if nrows else math.ceil(math.sqrt(n))
    nrows = nrows or math.ceil(n / ncols)
    fig, axs = get_grid(n, nrows, ncols, figsize=figsize or (2 * ncols, 2 * nrows), squeeze=False)
    for i, ax in enumerate(axs.flat[:n]):
        im, gray = _as_image(images[i])
        show_image(im, ax=ax, title=None if titles is None else titles[i], cmap=cmap if gray else None)
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig


class UnNormalize:
    """Undo `(x - mean) / std`: returns `x * std + mean` per channel, for display.

    `mean` and `std` are per-channel sequences (or numbers); the image is (C, H, W) or a batch (N, C, H, W).
    Returns a new tensor (the input is left as it is).
    """

    def __init__(self, mean: float | Sequence[float] | torch.Tensor, std: float | Sequence[float] | torch.Tensor):
        self.mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        self.std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if len(self.mean) != len(self.std):
            raise ValueError(f"UnNormalize: mean and std need one value per channel each; got {len(self.mean)} "
                             f"means and {len(self.std)} stds.")
        if (self.std == 0).any(): raise ValueError("UnNormalize: a std of 0 cannot have been divided by.")

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"UnNormalize takes a tensor (C, H, W) or (N, C, H, W); got {type(tensor).__name__}.")
        if tensor.ndim not in (3, 4):
            raise ValueError(f"UnNormalize takes a (C, H, W) image or an (N, C, H, W) batch; got a shape of "
                             f"{tuple(tensor.shape)}.")
        channels = tensor.shape[-3]
        if len(self.mean) not in (1, channels):
            raise ValueError(f"UnNormalize has {len(self.mean)} means and stds, but the image has {channels} "
                             f"channels (dim -3); give one per channel.")
        shape = (-1, 1, 1)
        mean, std = (v.to(tensor.device).view(shape) for v in (self.mean, self.std))
        return tensor * std + mean

    def __repr__(self) -> str: return f"UnNormalize(mean={self.mean.tolist()}, std={self.std.tolist()})"
