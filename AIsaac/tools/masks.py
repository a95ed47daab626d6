"""`mask2idxs`: the positions of the True entries of a boolean mask."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch


def mask2idxs(mask: Iterable[Any]) -> list[int]:
    """The indices of the entries of `mask` equal to True (a list, tuple, 1-D numpy array or 1-D tensor).

    As in the original, an entry counts when `entry == True`: `True`, `1` and `1.0` do, `2` does not.
    """
    if isinstance(mask, (torch.Tensor, np.ndarray)):
        if mask.ndim != 1:
            raise ValueError(f"mask2idxs takes a 1-D mask; got a shape of {tuple(mask.shape)} (flatten it first).")
        mask = mask.tolist()
    elif isinstance(mask, (str, bytes, dict)) or not isinstance(mask, Iterable):
        raise TypeError(f"mask2idxs takes a sequence of booleans (list, tuple, array or tensor); got {type(mask).__name__}.")
    return [i for i, e in enumerate(mask) if e == True]  # noqa: E712 (1 and 1.0 count, as in the original)
