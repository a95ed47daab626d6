"""The parts of a batch: the model's inputs `xb` and the targets `yb`, and the batch's size."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

LABEL_KEYS = ("labels", "label")  # the target of a mapping batch, as Hugging Face names it


def split_batch(batch: Any, n_inp: int = 1) -> tuple[tuple, tuple]:
    """`(xb, yb)`: of a tuple or list, the first `n_inp` items and the rest; a mapping (a dict, a Hugging Face
    `BatchEncoding`) whole as the one input, with `batch['labels']` (or `'label'`) as the target when present;
    anything else (a tensor) as the one input, with no target."""
    if isinstance(batch, (tuple, list)): return tuple(batch[:n_inp]), tuple(batch[n_inp:])
    if isinstance(batch, Mapping):
        for k in LABEL_KEYS:
            if k in batch: return (batch,), (batch[k],)
        return (batch,), ()
    return (batch,), ()


_DICT_VALUES = type({}.values())


def first_tensor(x: Any) -> torch.Tensor | None:
    """The first tensor in `x` (tensors nested in tuples, lists and mappings), or None."""
    if isinstance(x, torch.Tensor): return x
    if isinstance(x, Mapping): x = x.values()
    if isinstance(x, (tuple, list, _DICT_VALUES)):
        for o in x:
            if (t := first_tensor(o)) is not None: return t
    return None


def batch_size(xb: tuple, yb: tuple) -> int:
    """The number of rows of a batch: the first dimension of the first tensor in its targets, else in its inputs
    (1 if there is none, or it is a scalar). The one rule for weighing a batch (MetricsCB, `Trainer.log`)."""
    for part in (yb, xb):
        # The usual case first, without the nested search: a tuple whose first item is a tensor.
        t = part[0] if type(part) is tuple and part and isinstance(part[0], torch.Tensor) else first_tensor(part)
        if t is not None: return t.shape[0] if t.ndim else 1
    return 1
