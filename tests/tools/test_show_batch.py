import matplotlib

matplotlib.use("Agg")

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, BatchAugmentationCB, DataLoaders, DeviceCB, MetricsCB, ProgressCB, Trainer


def test_shows_the_batch_after_before_batch_and_restores_state():
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=3), DataLoader(TensorDataset(x, y), batch_size=3))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model,
                      [DeviceCB('cpu'), BasicTrainCB(), MetricsCB(), ProgressCB(bars=False),
                       BatchAugmentationCB(lambda b: 1 - b)])
    trainer.fit(1, lr=0.1)
    model.eval()
    state = {k: getattr(trainer, k) for k in ("opt", "lr", "batch", "epoch", "training")}
    weights = [p.clone() for p in model.parameters()]
    fig = trainer.show_image_batch(max_n=2)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(shown) == 2
    for arr, im in zip(shown, x[:2]): assert torch.equal(torch.as_tensor(arr.data), 1 - im[0])  # what the model sees
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["0", "1"]
    assert all(getattr(trainer, k) is v for k, v in state.items())
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert len(trainer.MetricsCB.losses_epoch) == 1  # the stopped fit recorded no epoch


def test_fit_only_callbacks_are_applied_then_removed():
    x, y = torch.rand(4, 1, 5, 5), torch.tensor([0, 1, 0, 1])
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=4), DataLoader(TensorDataset(x, y), batch_size=4))
    trainer = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Sequential(nn.Flatten(), nn.Linear(25, 2)),
                      [DeviceCB('cpu'), BasicTrainCB()])
    fig = trainer.show_image_batch(callbacks=[BatchAugmentationCB(lambda b: b * 0)])
    assert all(ax.images[0].get_array().max() == 0 for ax in fig.axes if ax.images)
    assert sum(bool(ax.images) for ax in fig.axes) == 4
    assert [type(cb).__name__ for cb in trainer.cbs] == ['DeviceCB', 'BasicTrainCB']
    assert trainer.opt is None and trainer.opts == {}  # never fit: no optimizer left behind
