"""`DataLoaders`: the train and valid loaders a trainer draws from; `get_dataloaders` and `collate_dataset_dict`, the
plain PyTorch loaders and collate function it builds them with (the column reading is in AIsaac.data.columns)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..runtime.args import whole_number
from ..runtime.messages import inform
from .columns import DictCollate, batch_columns, check_format, split_tensors
from .dataset_loader import DatasetLoader, loading_plan, usable_cores
from .tensor_loader import TensorLoader, as_tensor


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


VALID_SPLITS = ("validation", "valid", "test")


def _with_transform_of(dataset: Any, source: Any) -> Any:
    """`dataset` with `source`'s Hugging Face transform (set by `with_transform`), unless it has a format already."""
    fmt = getattr(source, "format", None)
    if not fmt or fmt.get("type") != "custom" or getattr(dataset, "format", {}).get("type") is not None: return dataset
    transform = fmt.get("format_kwargs", {}).get("transform")
    return dataset.with_transform(transform) if transform is not None else dataset


def _like(tensors: tuple[torch.Tensor, ...], valid: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """`tensors` as tensors, checked against the validation data's: the same number of rows in each, and inputs of
    its item shape and kind (raw pixels where the model takes normalised floats would give silent nonsense)."""
    tensors = tuple(as_tensor(t) for t in tensors)
    lengths = {len(t) for t in tensors}
    if len(lengths) > 1: raise ValueError(f"test_dl: the columns have different numbers of rows ({sorted(lengths)}).")
    for i, (t, v) in enumerate(zip(tensors, valid)):
        what = "the inputs" if i == 0 else f"column {i}"
        if t.shape[1:] != v.shape[1:]:
            raise ValueError(f"test_dl: {what} have shape {tuple(t.shape)}, but the validation data's have items of "
                             f"shape {tuple(v.shape[1:])}; give the new data the same item shape (and preprocessing).")
        if t.is_floating_point() != v.is_floating_point():
            raise ValueError(f"test_dl: {what} are {str(t.dtype).replace('torch.', '')} but the validation data's are "
                             f"{str(v.dtype).replace('torch.', '')}: the new data has not been preprocessed like the "
                             f"training data. Apply the same preprocessing (and transform) first.")
    return tensors


def _loading_choices(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`num_workers` and `main_threads` for `DatasetLoader`s on this machine (`loading_plan`), said when they differ
    from what was asked."""
    asked = kwargs.get("num_workers", 0)
    if not isinstance(asked, int) or asked <= 0: return {}
    cores = usable_cores()
    workers, threads = loading_plan(asked, cores)
    said = []
    if workers != asked:
        said.append(f"num_workers={asked} asked, but this process can use {cores} CPU core{'s' * (cores > 1)}, so "
                    + (f"the data loads in {workers} worker process{'es' * (workers > 1)} (one core stays with the "
                       f"model)" if workers else "the data loads in this process (a worker would take turns with "
                       "the model)"))
    if threads is not None and threads < torch.get_num_threads():
        said.append(f"while the workers decode, torch runs on {threads} thread{'s' * (threads > 1)} here instead of "
                    f"{torch.get_num_threads()} (the cores they leave)")
    if not workers:  # DataLoader refuses these without workers
        for k in ("persistent_workers", "prefetch_factor"): kwargs.pop(k, None)
    if said:
        inform(None, f"DataLoaders.from_dataset_dict: {'; '.join(said)}. To choose yourself, build "
                     f"DataLoaders(DataLoader(...), DataLoader(...)).")
    return {"num_workers": workers, "main_threads": threads}


class DataLoaders:
    """A pair of loaders: `train` (shuffled) and `valid`."""

    def __init__(self, train: Any, valid: Any):
        self.train, self.valid = train, valid

    def __repr__(self) -> str: return f"DataLoaders(train={self.train!r}, valid={self.valid!r})"

    def show_batch(self, n: int = 9, ncols: int | None = None, figsize: tuple[float, float] | None = None,
                   cmap: str | None = "gray"):
        """The first `n` images of a training batch, titled with their class names (else label numbers); the figure."""
        from ..display.images import show_images
        from .labels import class_names, label_titles
        batch = next(iter(self.train))
        images = batch[0][:n]
        titles = label_titles(batch[1], class_names(self.train), len(images)) if len(batch) > 1 else None
        return show_images(images, titles, ncols=ncols, figsize=figsize, cmap=cmap)

    def test_dl(self, dataset: Any, batch_size: int | None = None, with_labels: bool | None = None) -> Any:
        """A loader over new data, in order, built like the validation loader (its batch size, collate, workers).

        `dataset` is a Hugging Face `Dataset` (given the training split's transform when it has none of its own, and
        collated like the training data: with DictCollate, only the features it has, so unlabelled data works), a
        torch Dataset (a `TensorDataset(x)` of inputs only too), a tensor or array of inputs, or a tuple of them as
        columns (`(x, y)`); a list is a list of items. For in-memory loaders (`TensorLoader`s) the data is read whole
        into one, checked against the validation data's shapes and kinds. `with_labels=False` leaves the labels out
        even where the data has them (batches are then `(inputs,)`). `get_preds(dl)` takes the loader's targets where
        its batches have them, and predicts without them where they have none (its `for_prediction` is True).
        """
        loader = self._test_loader(dataset, batch_size, with_labels)
        loader.for_prediction = True  # get_preds takes its targets where its batches have them, else predicts alone
        return loader

    def _test_loader(self, dataset: Any, batch_size: int | None, with_labels: bool | None) -> Any:
        valid = self.valid
        bs = batch_size or getattr(valid, "batch_size", None) or 64
        collate = getattr(self.train, "collate_fn", None)
        features = getattr(dataset, "features", None)
        in_memory = isinstance(valid, TensorLoader)
        tensors = self._test_tensors(dataset, in_memory)
        if tensors is not None:
            if with_labels is False: tensors = tensors[:1]
            if in_memory: return TensorLoader(*_like(tensors, valid.tensors), batch_size=bs).to(valid.device)
            dataset, collate = TensorDataset(*(as_tensor(t) for t in tensors)), None
        elif features is not None:
            dataset = _with_transform_of(dataset, getattr(self.train, "dataset", None))
            if isinstance(collate, DictCollate):
                keys = [k for k in collate.keys if k in features]
                # The user's collate_fn (a padding collator) stays: it gets the columns the new data has.
                collate = DictCollate(keys[:1] if with_labels is False else keys, collate.collate_fn)
        kwargs = {k: getattr(valid, k) for k in ("num_workers", "pin_memory") if hasattr(valid, k)}
        if kwargs.get("num_workers"): kwargs["persistent_workers"] = False
        return DataLoader(dataset, batch_size=bs, shuffle=False, collate_fn=collate, **kwargs)

    def _test_tensors(self, dataset: Any, in_memory: bool) -> tuple[Any, ...] | None:
        """The columns of `dataset`, or None for a dataset a DataLoader reads item by item.

        A tensor or array is the one input; a tuple of them, columns (inputs first); a TensorDataset, its tensors. For
        in-memory loaders also a list of items (stacked into the one input), and a Hugging Face split, read whole
        through the training split's transform when it has none, in the training columns' order (those it has, so
        unlabelled data works).
        """
        if isinstance(dataset, (torch.Tensor, np.ndarray)): return (dataset,)
        if isinstance(dataset, TensorDataset): return tuple(dataset.tensors)
        if isinstance(dataset, tuple) and dataset and all(isinstance(t, (torch.Tensor, np.ndarray)) for t in dataset):
            return dataset
        if not in_memory: return None
        if isinstance(dataset, list):
            try: return (as_tensor(dataset),)
            except (RuntimeError, TypeError, ValueError) as e:
                raise ValueError(f"test_dl takes a list as items of one input, but these cannot be stacked ({e}); "
                                 f"pass columns as a tuple, e.g. dls.test_dl((x, y)).") from e
        features = getattr(dataset, "features", None)
        if features is None:
            raise TypeError(f"test_dl for in-memory loaders (TensorLoaders) takes a tensor, an array, a tuple of them, "
                            f"a TensorDataset or a Hugging Face Dataset; got {type(dataset).__name__}. Read it into "
                            f"tensors first, e.g. dls.test_dl((x,)).")
        source, columns = getattr(self, "_split", None), getattr(self, "_columns", None)
        dataset = _with_transform_of(dataset, source)
        keys = [k for k in columns if k in features] if columns else list(features)
        return split_tensors(dataset, keys)

    @classmethod
    def from_tensors(cls, train: Sequence[Any], valid: Sequence[Any] | None, batch_size: int, drop_last: bool = False,
                     device: torch.device | str | None = None) -> "DataLoaders":
        """`TensorLoader`s over in-memory data: `train` (a tuple like `(x, y)` of tensors or arrays) shuffled, `valid`
        in order at twice `batch_size` (None: no validation loader); `drop_last` applies to the training loader only;
        `device` makes them resident."""
        for name, data in (("train", train), ("valid", valid)):
            if data is not None and not isinstance(data, (tuple, list)):
                raise TypeError(f"DataLoaders.from_tensors takes {name} as a tuple like (x, y) of tensors or arrays "
                                f"(inputs first, then targets); got {type(data).__name__}. For inputs alone: (x,).")
        dls = cls(TensorLoader(*train, batch_size=batch_size, shuffle=True, drop_last=drop_last),
                  None if valid is None else TensorLoader(*valid, batch_size=batch_size * 2, shuffle=False))
        return dls.to_device(device) if device is not None else dls

    def _keep_source(self, split: Any, columns: Sequence[str]) -> "DataLoaders":
        # In-memory loaders keep no trace of the split they were read from: test_dl reads new data like it.
        self._split, self._columns = split, list(columns)
        return self

    def to_device(self, device: torch.device | str) -> "DataLoaders":
        """The same loaders with their data held on `device` (each batch then costs no copy); `TensorLoader`s only."""
        for name, dl in (("train", self.train), ("valid", self.valid)):
            if dl is not None and not callable(getattr(dl, "to", None)):
                raise TypeError(f"DataLoaders.to_device moves in-memory loaders only, but the {name} loader is a "
                                f"{type(dl).__name__}; build them with DataLoaders.from_tensors(...) or "
                                f"from_dataset_dict(..., in_memory=True), or keep DeviceCB moving each batch.")
        moved = type(self)(self.train.to(device), None if self.valid is None else self.valid.to(device))
        if hasattr(self, "_columns"): moved._keep_source(self._split, self._columns)
        return moved

    @classmethod
    def from_dataset_dict(cls, dataset_dict: Any, batch_size: int, in_memory: bool = False,
                          inputs: Sequence[str] | None = None, targets: Sequence[str] | None = None,
                          collate_fn: Any = None, **dataloader_kwargs: Any) -> "DataLoaders":
        """Loaders over a Hugging Face `DatasetDict`: the 'train' split shuffled, the 'validation' split (else 'test')
        in order at twice `batch_size`; each batch is the tuple `(*inputs, *targets)` of those columns.

        `inputs`, `targets`: column names, in the order the model and the loss take them (give BasicTrainCB
        `n_inp=len(inputs)`); by default all features in their declared order. `collate_fn` (e.g.
        `transformers.DataCollatorWithPadding(tokenizer)`) receives the items cut down to those columns and makes
        the batch itself (a padding collator's mapping goes to the model as keyword arguments); columns of
        variable-length sequences need one. Extra keyword arguments (num_workers, pin_memory, ...) go to both
        `DatasetLoader`s (torch `DataLoader`s whose workers persist across epochs); `num_workers` is capped at one
        fewer than the usable CPU cores (so none on one core), and while the workers decode the model runs on the
        cores they leave (`loading_plan`; a message says so when this differs from what was asked). Each batch is
        fetched from the dataset in one call (the transform runs once per batch). `in_memory=True` instead reads each split once, whole, through its transform
        or format (e.g. `dd.with_format('torch')`), and returns `TensorLoader`s (then only `drop_last` is accepted).
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
        keys = batch_columns(train, inputs, targets)
        if in_memory:
            extra = set(dataloader_kwargs) - {"drop_last"}
            if extra or collate_fn is not None:
                raise ValueError(f"from_dataset_dict(in_memory=True) builds TensorLoaders, which take only drop_last; "
                                 f"leave out {sorted(extra) + (['collate_fn'] if collate_fn is not None else [])} "
                                 f"(workers are not needed: a batch is one gather).")
            check_format(train, keys)
            dls = cls.from_tensors(split_tensors(train, keys), split_tensors(valid, keys), batch_size,
                                   **dataloader_kwargs)
            return dls._keep_source(train, keys)
        kwargs = {"collate_fn": DictCollate(keys, collate_fn), **dataloader_kwargs}
        for k in ("shuffle", "batch_size"):
            if k in kwargs: raise ValueError(f"from_dataset_dict sets {k} itself; pass batch_size positionally and "
                                             f"build DataLoaders(train, valid) yourself for other choices.")
        if collate_fn is None: check_format(train, keys)
        kwargs.update(_loading_choices(kwargs))
        return cls(DatasetLoader(train, batch_size=batch_size, shuffle=True, **kwargs),
                   DatasetLoader(valid, batch_size=batch_size * 2, shuffle=False, **kwargs))
