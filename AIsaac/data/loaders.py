"""`DataLoaders`: the train and valid loaders a trainer draws from; `get_dataloaders` and `collate_dataset_dict`, the
plain PyTorch loaders and collate function it builds them with."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import DataLoader, default_collate

from ..runtime.args import whole_number
from .tensor_loader import TensorLoader, as_tensor


class DictCollate:
    """Collate dict items into a tuple of batched values, in the order of `keys` (picklable for worker processes)."""

    def __init__(self, keys: Sequence[str]): self.keys = tuple(keys)

    def __call__(self, items: list[dict]) -> tuple:
        batch = default_collate(items)
        return tuple(batch[k] for k in self.keys)

    def __repr__(self) -> str: return f"DictCollate({list(self.keys)})"


def collate_dataset_dict(dataset: Any) -> DictCollate:
    """The collate function for loaders over a Hugging Face `Dataset` (a split): each batch a tuple of its features,
    in the order they are declared (`(image, label)` for Fashion-MNIST)."""
    features = getattr(dataset, "features", None)
    if not features:
        raise TypeError(f"collate_dataset_dict takes a Hugging Face Dataset (a split, with .features), like dd['train']; "
                        f"got {type(dataset).__name__}.")
    return DictCollate(features)


def get_dataloaders(train_dataset: Any, valid_dataset: Any, batch_size: int,
                    **dataloader_kwargs: Any) -> tuple[DataLoader, DataLoader]:
    """`torch.utils.data.DataLoader`s: over `train_dataset` shuffled at `batch_size`, over `valid_dataset` in order at
    twice `batch_size` (validation keeps no gradients, so twice the batch fits). Other keyword arguments
    (collate_fn, num_workers, ...) go to both."""
    batch_size = whole_number("batch_size", batch_size, owner="get_dataloaders", what="rows per training batch")
    for k in ("shuffle", "batch_size"):
        if k in dataloader_kwargs:
            raise ValueError(f"get_dataloaders sets {k} itself (train shuffled, valid in order at twice batch_size); "
                             f"build the DataLoaders yourself for other choices.")
    return (DataLoader(train_dataset, batch_size=batch_size, shuffle=True, **dataloader_kwargs),
            DataLoader(valid_dataset, batch_size=batch_size * 2, shuffle=False, **dataloader_kwargs))


def split_tensors(split: Any) -> tuple[torch.Tensor, ...]:
    """A dataset split read whole (`split[:]`, so its transform or format applies) as one tensor per feature."""
    columns = split[:]
    return tuple(as_tensor(columns[k]) for k in split.features)


VALID_SPLITS = ("validation", "valid", "test")


def _with_transform_of(dataset: Any, source: Any) -> Any:
    """`dataset` with `source`'s Hugging Face transform (set by `with_transform`), unless it has a format already."""
    fmt = getattr(source, "format", None)
    if not fmt or fmt.get("type") != "custom" or getattr(dataset, "format", {}).get("type") is not None: return dataset
    transform = fmt.get("format_kwargs", {}).get("transform")
    return dataset.with_transform(transform) if transform is not None else dataset


class DataLoaders:
    """A pair of loaders: `train` (shuffled) and `valid`."""

    def __init__(self, train: Any, valid: Any):
        self.train, self.valid = train, valid

    def __repr__(self) -> str: return f"DataLoaders(train={self.train!r}, valid={self.valid!r})"

    def show_batch(self, n: int = 9, ncols: int | None = None, figsize: tuple[float, float] | None = None,
                   cmap: str | None = "gray"):
        """The first `n` images of a training batch, titled with their class names (else label numbers); the figure."""
        from ..display.images import class_names, label_titles, show_images
        batch = next(iter(self.train))
        images = batch[0][:n]
        titles = label_titles(batch[1], class_names(self.train), len(images)) if len(batch) > 1 else None
        return show_images(images, titles, ncols=ncols, figsize=figsize, cmap=cmap)

    def test_dl(self, dataset: Any, batch_size: int | None = None, with_labels: bool | None = None) -> Any:
        """A loader over new data, in order, built like the validation loader (its batch size, collate, workers).

        `dataset` is a Hugging Face `Dataset` (given the training split's transform when it has none of its own, and
        collated like the training data: with DictCollate, only the features it has, so unlabelled data works), a
        torch Dataset, or for in-memory loaders a tensor or a tuple of tensors. `with_labels=False` leaves the labels
        out even where the data has them (batches are then `(inputs,)`; `get_preds(dl, with_targets=False)`).
        """
        valid = self.valid
        bs = batch_size or getattr(valid, "batch_size", None) or 64
        if isinstance(valid, TensorLoader):
            tensors = (dataset,) if isinstance(dataset, torch.Tensor) else tuple(dataset)
            if with_labels is False: tensors = tensors[:1]
            return TensorLoader(*tensors, batch_size=bs, shuffle=False).to(valid.device)
        collate = getattr(self.train, "collate_fn", None)
        features = getattr(dataset, "features", None)
        if features is not None:
            dataset = _with_transform_of(dataset, getattr(self.train, "dataset", None))
            if isinstance(collate, DictCollate):
                keys = [k for k in collate.keys if k in features]
                collate = DictCollate(keys[:1] if with_labels is False else keys)
        kwargs = {k: getattr(valid, k) for k in ("num_workers", "pin_memory") if hasattr(valid, k)}
        if kwargs.get("num_workers"): kwargs["persistent_workers"] = False
        return DataLoader(dataset, batch_size=bs, shuffle=False, collate_fn=collate, **kwargs)

    @classmethod
    def from_tensors(cls, train: Sequence[Any], valid: Sequence[Any], batch_size: int, drop_last: bool = False,
                     device: torch.device | str | None = None) -> "DataLoaders":
        """`TensorLoader`s over in-memory data: `train` (a tuple like `(x, y)` of tensors or arrays) shuffled, `valid`
        in order at twice `batch_size`; `drop_last` applies to the training loader only; `device` makes them resident."""
        dls = cls(TensorLoader(*train, batch_size=batch_size, shuffle=True, drop_last=drop_last),
                  TensorLoader(*valid, batch_size=batch_size * 2, shuffle=False))
        return dls.to_device(device) if device is not None else dls

    def to_device(self, device: torch.device | str) -> "DataLoaders":
        """The same loaders with their data held on `device` (each batch then costs no copy); `TensorLoader`s only."""
        for name, dl in (("train", self.train), ("valid", self.valid)):
            if not callable(getattr(dl, "to", None)):
                raise TypeError(f"DataLoaders.to_device moves in-memory loaders only, but the {name} loader is a "
                                f"{type(dl).__name__}; build them with DataLoaders.from_tensors(...) or "
                                f"from_dataset_dict(..., in_memory=True), or keep DeviceCB moving each batch.")
        return type(self)(self.train.to(device), self.valid.to(device))

    @classmethod
    def from_dataset_dict(cls, dataset_dict: Any, batch_size: int, in_memory: bool = False,
                          **dataloader_kwargs: Any) -> "DataLoaders":
        """Loaders over a Hugging Face `DatasetDict`: the 'train' split shuffled, the 'validation' split (else 'test')
        in order at twice `batch_size`; each batch is a tuple of the features in their declared order.

        Extra keyword arguments (num_workers, pin_memory, ...) go to both `torch.utils.data.DataLoader`s.
        `in_memory=True` instead reads each split once, whole, through its transform or format (e.g.
        `dd.with_format('torch')`), and returns `TensorLoader`s (then only `drop_last` is accepted, for training).
        """
        splits = list(dataset_dict.keys())
        if "train" not in splits:
            raise ValueError(f"The DatasetDict has no 'train' split (its splits: {splits}); rename the training split "
                             f"to 'train', e.g. dd['train'] = dd.pop('{splits[0] if splits else 'name'}').")
        valid_name = next((s for s in VALID_SPLITS if s in splits), None)
        if valid_name is None:
            raise ValueError(f"The DatasetDict has no validation split (looked for {', '.join(VALID_SPLITS)}; its "
                             f"splits: {splits}); make one, e.g. dd = dd['train'].train_test_split(test_size=0.1).")
        batch_size = whole_number("batch_size", batch_size, owner="DataLoaders.from_dataset_dict",
                                  what="rows per batch")
        train, valid = dataset_dict["train"], dataset_dict[valid_name]
        if in_memory:
            extra = set(dataloader_kwargs) - {"drop_last"}
            if extra: raise ValueError(f"from_dataset_dict(in_memory=True) builds TensorLoaders, which take only drop_last; "
                                       f"leave out {sorted(extra)} (workers are not needed: a batch is one gather).")
            return cls.from_tensors(split_tensors(train), split_tensors(valid), batch_size, **dataloader_kwargs)
        return cls(*get_dataloaders(train, valid, batch_size,
                                    **{"collate_fn": collate_dataset_dict(train), **dataloader_kwargs}))
