"""A small classifier fit for checkpoint tests, a callback with state, and the profiling tests' trainer."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import BasicTrainCB, Callback, DataLoaders, Trainer


class ScaleCB(Callback):
    """A callback with state: a number it multiplies by."""

    def __init__(self, scale=1.0): self.scale = scale
    def state_dict(self): return {"scale": self.scale}
    def load_state_dict(self, state): self.scale = state["scale"]


def make_trainer(model=None, callbacks=(), n=16):
    """A Trainer of a 4-5-2 MLP on `n` random rows (train shuffled in batches of 4), plain SGD."""
    torch.manual_seed(0)
    ds = TensorDataset(torch.randn(n, 4), torch.randint(0, 2, (n,)))
    dls = DataLoaders(DataLoader(ds, batch_size=4, shuffle=True), DataLoader(ds, batch_size=8))
    model = model if model is not None else nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model, [BasicTrainCB(), *callbacks])


def profiled_trainer(*extra):
    """A Trainer for the profiling tests: 5 training and 2 validation batches of a 4-3 linear model."""
    from AIsaac.all import DeviceCB, MetricsCB, TensorLoader
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    dls = DataLoaders(TensorLoader(x, y, batch_size=8), TensorLoader(x[:16], y[:16], batch_size=8))  # 5 and 2 batches
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 3),
                   [BasicTrainCB(), DeviceCB("cpu"), MetricsCB(), *extra])


class ReadsLoss:
    """Reads the loss on the host after every batch (a sync the profiler counts)."""
    def after_batch(self, trainer): trainer.loss.item()
