"""Tiny synthetic data and models for the callback tests (each fit takes milliseconds)."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import Accuracy, BasicTrainCB, DataLoaders, DeviceCB, MetricsCB, ProgressCB, Trainer


def _dls(n_train: int = 64, n_valid: int = 32, bs: int = 8, seed: int = 0) -> DataLoaders:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_valid, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()  # 3 classes
    train, valid = TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:])
    return DataLoaders(DataLoader(train, batch_size=bs, shuffle=False), DataLoader(valid, batch_size=bs))


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.fixture
def make_dls(): return _dls


@pytest.fixture
def make_model(): return _model


@pytest.fixture
def make_trainer():
    def make(callbacks=(), opt_func=torch.optim.SGD, model=None, dls=None, metrics=True, **dls_kwargs):
        cbs = [BasicTrainCB(), *([MetricsCB()] if metrics else []), *callbacks]
        return Trainer(dls or _dls(**dls_kwargs), nn.CrossEntropyLoss(), opt_func, model or _model(), cbs)
    return make


@pytest.fixture
def tiny_trainer():
    """A trainer on 24 random rows of 3 classes with DeviceCB, BasicTrainCB, MetricsCB(Accuracy), a quiet ProgressCB, and `cbs`."""
    def make(*cbs):
        torch.manual_seed(0)
        x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
        dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
                          DataLoader(TensorDataset(x[:12], y[:12]), batch_size=5))
        return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 3),
                       [DeviceCB('cpu'), BasicTrainCB(), MetricsCB(Accuracy=Accuracy()), ProgressCB(bars=False), *cbs])
    return make

class Recorder:
    '''Records the lr of param group 0 at every training batch (what the step of that batch used)'''

    order = 100

    def __init__(self): self.lrs = []

    def before_fit(self, trainer): self.lrs = []

    def before_batch(self, trainer):
        if trainer.training: self.lrs.append(trainer.opt.param_groups[0]['lr'])


@pytest.fixture
def recorder(): return Recorder()
