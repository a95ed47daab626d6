import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import Accuracy, BasicTrainCB, DataLoaders, DeviceCB, MetricsCB, Trainer, plot_losses


def tiny_trainer(**metrics):
    torch.manual_seed(0)
    x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
                      DataLoader(TensorDataset(x[:12], y[:12]), batch_size=5))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 3),
                   [DeviceCB('cpu'), BasicTrainCB(), MetricsCB(**metrics)])


def test_plot_draws_batch_loss_valid_loss_and_metrics(tmp_path):
    trainer = tiny_trainer(Accuracy=Accuracy())
    trainer.fit(3, lr=0.1)
    fig = plot_losses(trainer)
    ax, ax2 = fig.axes
    assert [line.get_label() for line in ax.lines] == ["train loss (batch)", "valid loss (epoch)"]
    assert [line.get_label() for line in ax2.lines] == ["Accuracy"]
    m = trainer.MetricsCB
    train = [r["loss"] for r in m.losses_batch if r["training"]]
    assert list(ax.lines[0].get_ydata()) == train and list(ax.lines[0].get_xdata()) == list(range(1, 10))
    assert list(ax.lines[1].get_xdata()) == [3, 6, 9]  # at the end of each epoch's 3 training batches
    assert list(ax.lines[1].get_ydata()) == [e["valid"] for e in m.losses_epoch]
    assert list(ax2.lines[0].get_ydata()) == [e["Accuracy"] for e in m.metrics_epoch]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train loss (batch)", "valid loss (epoch)", "Accuracy"]
    fig.savefig(tmp_path / "losses.png")
    assert (tmp_path / "losses.png").read_bytes()[:4] == b"\x89PNG"


def test_metricscb_plot_without_metrics_or_valid():
    trainer = tiny_trainer()
    trainer.fit(2, lr=0.1, valid=False)
    fig = trainer.MetricsCB.plot()
    assert len(fig.axes) == 1 and [line.get_label() for line in fig.axes[0].lines] == ["train loss (batch)"]


def test_errors():
    with pytest.raises(ValueError, match="fit the trainer first"): plot_losses(MetricsCB())
    trainer = tiny_trainer()
    trainer.remove_callbacks(trainer.MetricsCB)
    with pytest.raises(ValueError, match="add MetricsCB"): plot_losses(trainer)
