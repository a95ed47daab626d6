import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import DataLoaders, Trainer, get_model_conv


def make(model):
    ds = TensorDataset(torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,)))
    return Trainer(DataLoaders(DataLoader(ds, batch_size=3), DataLoader(ds, batch_size=3)), nn.CrossEntropyLoss(),
                   torch.optim.SGD, model)


def test_summary_counts_match_pytorch(capsys):
    pytest.importorskip("torchinfo")
    model = get_model_conv(nfs=[1, 4, 8], norm=nn.BatchNorm2d)
    model.eval()
    stats = make(model).summarize_model()
    assert stats.total_params == sum(p.numel() for p in model.parameters())
    assert stats.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    text = capsys.readouterr().out
    assert "Conv2d" in text and "BatchNorm2d" in text
    assert "[3, 1, 28, 28]" in text and "[3, 160]" in text  # one batch of 3 in, the model's output shape out
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 160)
    assert not model.training


def test_missing_torchinfo(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchinfo", None)
    with pytest.raises(ImportError, match="pip install torchinfo"): make(nn.Linear(1, 1)).summarize_model()
