"""AccelerateCB used the original's way (`[AccelerateCB(), DeviceCB(), ...]`, no step callback): a setup error at fit
start that says to add BasicTrainCB() (here the training step is its own callback)."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import AccelerateCB, CallbackSetupError, DataLoaders, DeviceCB, MetricsCB, Trainer

pytest.importorskip("accelerate")


def test_fit_without_a_step_callback_says_to_add_basic_train_cb():
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    dls = DataLoaders(DataLoader(TensorDataset(x, y), batch_size=4), DataLoader(TensorDataset(x, y), batch_size=4))
    model = nn.Linear(4, 2)
    w = model.weight.detach().clone()
    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model, [AccelerateCB(cpu=True), DeviceCB("cpu"), MetricsCB()])
    with pytest.raises(CallbackSetupError, match=r"BasicTrainCB\(\)"):
        t.fit(1)
    assert torch.equal(model.weight, w)  # stopped before any batch trained
