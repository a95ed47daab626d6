"""A Hugging Face dataset's columns as batches: `DictCollate` (dict items to a tuple of batched columns),
`split_tensors` (a split read whole, one tensor per column), `batch_columns` (the columns a batch holds, checked),
and the error for a column of sequences of different lengths."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import default_collate

from .tensor_loader import as_tensor


def _length(value: Any) -> int | None:
    if isinstance(value, torch.Tensor): return len(value) if value.ndim else None
    return len(value) if isinstance(value, (list, tuple)) else None


def _ragged_column(items: list[dict], keys: Sequence[str]) -> tuple[str, set] | None:
    """The first of `keys` whose values differ in length across `items` (sequences that cannot be stacked), or None."""
    for k in keys:
        lengths = {_length(it[k]) for it in items}
        if len(lengths) > 1: return k, lengths
    return None


def _ragged_error(key: str, lengths: set) -> ValueError:
    shown = sorted(n for n in lengths if n is not None)[:4]
    return ValueError(f"Column '{key}' holds sequences of different lengths ({', '.join(map(str, shown))}, ...), which "
                      f"cannot be stacked into one batch tensor. Pass a padding collate function: "
                      f"DataLoaders.from_dataset_dict(dd, bs, ..., collate_fn=transformers.DataCollatorWithPadding("
                      f"tokenizer)) for token ids, or your own that pads them to the longest in the batch.")


class DictCollate:
    """Collate dict items into a tuple of batched values, in the order of `keys` (picklable for worker processes).

    With `collate_fn`, the items (cut down to `keys`) go to it instead and its result is the batch (a padding collator's
    mapping, say, which BasicTrainCB passes to the model as keyword arguments).
    """

    def __init__(self, keys: Sequence[str], collate_fn: Any = None):
        self.keys, self.collate_fn = tuple(keys), collate_fn

    def __call__(self, items: list[dict]) -> Any:
        if self.collate_fn is not None: return self.collate_fn([{k: it[k] for k in self.keys} for it in items])
        # Only the batch's columns: the others (captions, ids, ...) would each cost a collate, and a ragged one fail the batch.
        try: return tuple(default_collate([it[k] for it in items]) for k in self.keys)
        except (RuntimeError, TypeError) as e:
            ragged = _ragged_column(items, self.keys)
            if ragged is None: raise
            raise _ragged_error(*ragged) from e

    def __repr__(self) -> str:
        extra = f", collate_fn={self.collate_fn!r}" if self.collate_fn is not None else ""
        return f"DictCollate({list(self.keys)}{extra})"


def split_tensors(split: Any, keys: Sequence[str] | None = None) -> tuple[torch.Tensor, ...]:
    """A dataset split read whole (`split[:]`, so its transform or format applies) as one tensor per feature in `keys`
    (default: all, in their declared order)."""
    columns = split[:]
    keys = list(split.features) if keys is None else keys
    out = []
    for k in keys:
        try: out.append(as_tensor(columns[k]))
        except (RuntimeError, ValueError, TypeError) as e:
            ragged = _ragged_column([{k: v} for v in columns[k]], [k])
            if ragged is None: raise
            raise _ragged_error(*ragged) from e
    return tuple(out)


def batch_columns(split: Any, inputs: Sequence[str] | None, targets: Sequence[str] | None) -> list[str]:
    """The batch's columns, `[*inputs, *targets]` (all features in declared order when neither is given), checked."""
    features = list(split.features)
    if inputs is None and targets is None:
        labels = [k for k in features if type(split.features[k]).__name__ == "ClassLabel"]
        if len(features) > 1 and features[0] in labels:
            others = [k for k in features if k not in labels] or features[1:]
            raise ValueError(f"from_dataset_dict: the dataset's first column, '{features[0]}', holds the labels (a "
                             f"ClassLabel), but by default the columns go in their declared order with the inputs "
                             f"first, so the model would get the labels as its input. Name them: "
                             f"from_dataset_dict(dd, bs, inputs={others!r}, targets={labels!r}).")
        return features
    for name, given in (("inputs", inputs), ("targets", targets)):
        if isinstance(given, str):
            raise TypeError(f"from_dataset_dict: {name} is a list of column names; got the string {given!r} "
                            f"(write {name}=[{given!r}]).")
    keys = [*(inputs or ()), *(targets or ())]
    unknown = [k for k in keys if k not in features]
    if unknown: raise ValueError(f"from_dataset_dict: no column {unknown} in the dataset (its columns: {features}).")
    if len(set(keys)) < len(keys): raise ValueError(f"from_dataset_dict: a column is named twice in {keys}.")
    return keys


def check_format(split: Any, keys: Sequence[str]) -> None:
    """Raise when `split` has no format or transform and a column of its first row is no integer: Python lists (of one
    length: sequences to pad get their own error), floats, images or text, which a batch cannot hold as the tensors a
    model takes."""
    fmt = getattr(split, "format", None)
    if not isinstance(fmt, dict) or fmt.get("type") is not None or not len(split): return
    rows = split[:8]
    for k in keys:
        value = rows[k][0]
        if isinstance(value, int): continue
        if _ragged_column([{k: v} for v in rows[k]], [k]): continue  # sequences to pad: the ragged error says so
        what = "Python lists" if isinstance(value, (list, tuple)) else f"{type(value).__name__} values"
        raise ValueError(f"from_dataset_dict: the dataset has no format, so its column '{k}' comes as {what}, which "
                         f"do not batch into the tensors a model takes. Give it the torch format: dd = "
                         f"dd.with_format('torch') (or dd.with_transform(f) to make tensors of images or text), or "
                         f"pass a collate_fn that makes the batch.")
