"""sample_dataset_dict, collate_dataset_dict and get_dataloaders, as the original's notebooks use them
(`dd = sample_dataset_dict(dd)` then loaders over the sample)."""
import random

import datasets
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (DataLoaders, DictCollate, collate_dataset_dict, get_dataloaders, inplace, sample_dataset_dict,
                        set_seed)


def dataset_dict(n_train=40, n_test=30):
    feats = datasets.Features({"image": datasets.Sequence(datasets.Value("float32")), "label": datasets.Value("int64")})
    make = lambda n, off: datasets.Dataset.from_dict(
        {"image": [[float(i + off), 0.5] for i in range(n)], "label": [i + off for i in range(n)]}, features=feats)
    return datasets.DatasetDict({"train": make(n_train, 0), "test": make(n_test, 1000)})


@inplace
def to_tensors(b): b["image"] = [torch.tensor(o) for o in b["image"]]


def test_sample_picks_distinct_rows_of_each_split_keeps_the_transform_and_the_original():
    dd = dataset_dict().with_transform(to_tensors)
    small = sample_dataset_dict(dd, (10, 5), seed=0)
    assert isinstance(small, datasets.DatasetDict) and list(small) == ["train", "test"]
    assert (len(small["train"]), len(small["test"])) == (10, 5) and (len(dd["train"]), len(dd["test"])) == (40, 30)
    labels = small["train"]["label"]
    assert len(set(labels)) == 10 and set(labels) <= set(range(40))
    assert set(small["test"]["label"]) <= set(range(1000, 1030))
    row = small["train"][0]
    assert isinstance(row["image"], torch.Tensor) and float(row["image"][0]) == row["label"]  # transform kept
    # The same indices as random.sample with that seed (hand computation).
    rng = random.Random(0)
    assert labels == rng.sample(range(40), 10)
    assert small["test"]["label"] == [1000 + i for i in rng.sample(range(30), 5)]


def test_sample_follows_set_seed_and_the_default_sizes():
    big = dataset_dict(600, 550)
    set_seed(3)
    a = sample_dataset_dict(big)
    set_seed(3)
    b = sample_dataset_dict(big)
    assert (len(a["train"]), len(a["test"])) == (500, 500) and a["train"]["label"] == b["train"]["label"]
    one = sample_dataset_dict(dataset_dict(), 7, seed=1)
    assert (len(one["train"]), len(one["test"])) == (7, 7)
    only_train = sample_dataset_dict(dataset_dict(), [4], seed=1)
    assert (len(only_train["train"]), len(only_train["test"])) == (4, 30)  # splits past the sizes stay whole


def test_sample_errors():
    with pytest.raises(ValueError, match="'test' split has 30 rows, so it cannot give a sample of 31"): sample_dataset_dict(dataset_dict(), (10, 31))
    with pytest.raises(ValueError, match="at most one size per split"): sample_dataset_dict(dataset_dict(), (1, 2, 3))
    with pytest.raises(TypeError, match="DatasetDict"): sample_dataset_dict([1, 2])


def test_collate_dataset_dict_and_get_dataloaders_equal_plain_pytorch():
    dd = sample_dataset_dict(dataset_dict().with_transform(to_tensors), (24, 12), seed=0)
    collate = collate_dataset_dict(dd["train"])
    assert isinstance(collate, DictCollate) and collate.keys == ("image", "label")
    train, valid = get_dataloaders(dd["train"], dd["test"], 8, collate_fn=collate)
    assert (train.batch_size, valid.batch_size) == (8, 16)
    assert isinstance(train.sampler, torch.utils.data.RandomSampler)
    assert isinstance(valid.sampler, torch.utils.data.SequentialSampler)
    xb, yb = next(iter(valid))  # in order: the first 12 rows of the split, as a tuple (image, label)
    assert torch.equal(yb, torch.tensor(dd["test"]["label"])) and torch.equal(xb[:, 0], yb.float())
    torch.manual_seed(0)
    got = [y for _, y in train]
    assert sorted(torch.cat(got).tolist()) == sorted(dd["train"]["label"]) and [len(y) for y in got] == [8, 8, 8]
    # Same as DataLoaders.from_dataset_dict, which is built with them.
    dls = DataLoaders.from_dataset_dict(datasets.DatasetDict({"train": dd["train"], "test": dd["test"]}), 8)
    assert (dls.train.batch_size, dls.valid.batch_size) == (8, 16)
    # Plain tensors work too (no collate needed).
    x, y = torch.randn(10, 2), torch.arange(10)
    tr, va = get_dataloaders(TensorDataset(x, y), TensorDataset(x, y), 4, drop_last=True)
    assert [len(b[1]) for b in tr] == [4, 4] and [len(b[1]) for b in va] == [8]


def test_loader_helpers_errors():
    with pytest.raises(ValueError, match="batch_size must be a whole number"): get_dataloaders([1], [1], 0)
    with pytest.raises(ValueError, match="sets shuffle itself"): get_dataloaders([1], [1], 2, shuffle=False)
    with pytest.raises(TypeError, match="Hugging Face Dataset"): collate_dataset_dict(TensorDataset(torch.zeros(2)))
    assert isinstance(get_dataloaders([1, 2], [3], 1)[0], DataLoader)
