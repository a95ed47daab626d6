import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.data.loaders import DataLoaders


def make_data(n=96, n_valid=40, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + n_valid, d, generator=g)
    w = torch.randn(d, classes, generator=g)
    y = (x @ w).argmax(1)
    return (x[:n], y[:n]), (x[n:], y[n:])


@pytest.fixture
def tiny_dls():
    """Train (96 rows, batches of 16, not shuffled) and valid (40 rows, batches of 16: 16, 16, 8) of a 3-class problem."""
    (xt, yt), (xv, yv) = make_data()
    return DataLoaders(DataLoader(TensorDataset(xt, yt), batch_size=16), DataLoader(TensorDataset(xv, yv), batch_size=16))


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return nn.Linear(6, 3)
