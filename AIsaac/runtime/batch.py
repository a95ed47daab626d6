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
    # The usual batches first, by their exact type: a tuple (whose slices are tuples), a dict with 'labels'.
    kind = type(batch)
    if kind is tuple: return batch[:n_inp], batch[n_inp:]
    if kind is dict and "labels" in batch: return (batch,), (batch["labels"],)
    if isinstance(batch, (tuple, list)): return tuple(batch[:n_inp]), tuple(batch[n_inp:])
    if isinstance(batch, dict) or isinstance(batch, Mapping):  # a dict first: the abstract check costs more
        for k in LABEL_KEYS:
            if k in batch: return (batch,), (batch[k],)
        return (batch,), ()
    return (batch,), ()


def join_batch(batch: Any, xb: tuple, yb: tuple) -> Any:
    """A batch of the kind `batch` is, made of inputs `xb` and targets `yb` (what `split_batch` splits back into them):
    of a tuple or list, `(*xb, *yb)` of its type (a namedtuple too, when the length is kept); of a mapping, the input
    mapping `xb[0]` with its target key ('labels', or 'label' when it had that one) set to `yb[0]`; of anything else
    (a tensor), `xb[0]` when there is no target, else the tuple `(*xb, *yb)`."""
    if type(batch) is tuple: return (*xb, *yb)  # the usual batch, before the checks of the others
    if isinstance(batch, Mapping) and len(xb) == 1 and isinstance(xb[0], Mapping) and len(yb) <= 1:
        out = dict(xb[0])
        if yb: out[next((k for k in LABEL_KEYS if k in batch), LABEL_KEYS[0])] = yb[0]
        return out
    items = (*xb, *yb)
    if hasattr(batch, "_fields") and len(items) == len(batch): return type(batch)(*items)
    if isinstance(batch, list): return list(items)
    if not isinstance(batch, (tuple, Mapping)) and len(xb) == 1 and not yb: return xb[0]
    return items


_DICT_VALUES: Any = type({}.values())


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
    if type(yb) is tuple and yb and isinstance(t := yb[0], torch.Tensor):  # the usual batch, before the search
        return t.shape[0] if t.ndim else 1
    for part in (yb, xb):
        t = part[0] if type(part) is tuple and part and isinstance(part[0], torch.Tensor) else first_tensor(part)
        if t is not None: return t.shape[0] if t.ndim else 1
    return 1


def loader_length(dl: Any) -> int | None:
    """`len(dl)`, or None for a loader without a length (an IterableDataset, a streamed dataset)."""
    try: return len(dl)
    except TypeError: return None
