import datasets
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (Accuracy, BasicTrainCB, DataLoaders, DeviceCB, MetricsCB, TensorLoader, Trainer,
                        get_model_conv, set_seed)


def data(n=100):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_same_batches_as_a_dataloader_with_the_same_permutation():
    x, y = data()
    tl = TensorLoader(x, y, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    dl = DataLoader(TensorDataset(x, y), batch_size=16, sampler=perm.tolist())
    ours, theirs = list(tl), list(dl)
    assert len(ours) == len(theirs) == len(tl) == 7
    for (a, b), (c, d) in zip(ours, theirs):
        assert torch.equal(a, c) and torch.equal(b, d)


def test_in_order_and_drop_last():
    x, y = data(50)
    batches = list(TensorLoader(x, y, batch_size=16))
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    dropped = TensorLoader(x, y, batch_size=16, shuffle=True, drop_last=True)
    assert len(dropped) == 3 and [len(b[0]) for b in dropped] == [16, 16, 16]


def test_shuffle_is_reproducible_under_set_seed_and_differs_between_epochs():
    x, y = data()
    tl = TensorLoader(x, y, batch_size=32, shuffle=True)
    set_seed(7)
    first = [torch.cat([b[1] for b in tl]) for _ in range(2)]
    set_seed(7)
    again = [torch.cat([b[1] for b in tl]) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])
    assert torch.equal(first[0].sort().values, y.sort().values)  # a permutation: every sample once


def test_numpy_arrays_and_errors():
    x, y = data(20)
    tl = TensorLoader(x.numpy(), y.numpy(), batch_size=8)
    assert torch.equal(next(iter(tl))[0], x[:8])
    with pytest.raises(ValueError, match="same length"): TensorLoader(x, y[:5])
    with pytest.raises(ValueError, match="batch_size"): TensorLoader(x, y, batch_size=0)
    with pytest.raises(TypeError, match="from_tensors"):
        DataLoaders(DataLoader(TensorDataset(x, y)), DataLoader(TensorDataset(x, y))).to_device("cpu")


def dataset_dict(n=64):
    x, y = data(n)
    feats = datasets.Features({"image": datasets.Array3D((1, 28, 28), "float32"), "label": datasets.Value("int64")})
    split = lambda a, b: datasets.Dataset.from_dict({"image": a.numpy(), "label": b.numpy()}, features=feats)
    return datasets.DatasetDict(train=split(x[:48], y[:48]), test=split(x[48:], y[48:])), x, y


def test_from_dataset_dict_in_memory_matches_the_dataloader_path():
    dd, x, y = dataset_dict()
    dd = dd.with_format("torch")
    fast = DataLoaders.from_dataset_dict(dd, 16, in_memory=True, drop_last=True)
    assert isinstance(fast.train, TensorLoader) and fast.train.drop_last and not fast.valid.drop_last
    slow = DataLoaders.from_dataset_dict(dd, 16)
    for a, b in zip(fast.valid, slow.valid):  # validation is in order in both: identical batches
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(fast.train.tensors[0], x[:48])
    with pytest.raises(ValueError, match="num_workers"): DataLoaders.from_dataset_dict(dd, 16, in_memory=True, num_workers=2)


def test_from_dataset_dict_in_memory_applies_the_transform():
    dd, x, y = dataset_dict()
    def transform(b):
        b["image"] = [torch.as_tensor(np.asarray(o, dtype=np.float32)) * 2 for o in b["image"]]
        return b
    fast = DataLoaders.from_dataset_dict(dd.with_transform(transform), 16, in_memory=True)
    assert torch.allclose(fast.valid.tensors[0], x[48:] * 2)


def test_trains_the_tutorial_model_like_a_dataloader():
    # Same order, same model, same steps: the fit on a TensorLoader equals the fit on a DataLoader.
    x, y = data(96)
    perm = torch.randperm(96, generator=torch.Generator().manual_seed(1))
    fits = []
    for fast in (True, False):
        if fast: train = TensorLoader(x, y, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))
        else: train = DataLoader(TensorDataset(x, y), batch_size=32, sampler=perm.tolist())
        dls = DataLoaders(train, TensorLoader(x[:40], y[:40], batch_size=64))
        torch.manual_seed(0)
        t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, get_model_conv(),
                    [BasicTrainCB(), DeviceCB("cpu"), MetricsCB(Accuracy=Accuracy())])
        t.fit(1)
        fits.append(t)
    for p, q in zip(fits[0].model.parameters(), fits[1].model.parameters()): torch.testing.assert_close(p, q)
    assert fits[0].MetricsCB.losses_epoch == fits[1].MetricsCB.losses_epoch
