"""`conv` and `get_model_conv`: the tutorial's small convolutional net for 1x28x28 images and 10 classes."""
from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def conv(ni: int, nf: int, ks: int = 3, stride: int = 2, act: Callable[[], nn.Module] | None = nn.ReLU,
         norm: Callable[[int], nn.Module] | None = None, bias: bool | None = None) -> nn.Sequential:
    """A stride-`stride` convolution from `ni` to `nf` channels, then `norm` and `act` when given.

    The convolution has no bias when a batch norm follows it (the norm's shift makes it redundant).
    """
    if bias is None: bias = not (isinstance(norm, type) and issubclass(norm, _BATCH_NORMS))
    layers: list[nn.Module] = [nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=ks // 2, bias=bias)]
    if norm: layers.append(norm(nf))
    if act: layers.append(act())
    return nn.Sequential(*layers)


def get_model_conv(act: Callable[[], nn.Module] = nn.ReLU, nfs: Sequence[int] | None = None,
                   norm: Callable[[int], nn.Module] | None = None) -> nn.Sequential:
    """Stride-2 convs over `nfs` channels (default 1, 8, 16, 32, 64: 28x28 down to 2x2), a conv to 10 logits, flatten.

    Input: (batch, nfs[0], 28, 28) images. Output: (batch, 10) logits.
    """
    nfs = list(nfs) if nfs is not None else [1, 8, 16, 32, 64]
    layers = [conv(nfs[i], nfs[i + 1], act=act, norm=norm) for i in range(len(nfs) - 1)]
    return nn.Sequential(*layers, conv(nfs[-1], 10, act=None, norm=None, bias=True), nn.Flatten())
