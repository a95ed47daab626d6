"""CoreCBs: the five callbacks as one group."""
import torch
from torch import nn

from AIsaac.all import (ActivationStatsCB, BasicTrainCB, CoreCBs, DeviceCB, MetricsCB, ProgressCB, Trainer)
from AIsaac.callbacks.metrics import Accuracy


def test_adds_the_five_callbacks_and_trains(tiny_dls, tiny_model, capsys):
    tr = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.Adam, tiny_model,
                 callbacks=[CoreCBs(device="cpu", Accuracy=Accuracy())])
    for cls in (DeviceCB, BasicTrainCB, MetricsCB, ProgressCB, ActivationStatsCB):
        assert isinstance(getattr(tr, cls.__name__), cls)
    tr.fit(2, lr=0.01)
    assert len(tr.MetricsCB.metrics_epoch) == 2 and "Accuracy" in capsys.readouterr().out
    assert tr.DeviceCB.device == torch.device("cpu")


def test_module_filter_is_passed_on():
    f = lambda m: isinstance(m, nn.ReLU)
    assert CoreCBs(module_filter=f).callbacks[-1].module_filter is f


def test_repr_shows_the_callbacks_in_the_group():
    group = CoreCBs(device="cpu", Accuracy=Accuracy())
    assert repr(group) == f"CoreCBs([{', '.join(repr(cb) for cb in group.callbacks)}])"
    assert "DeviceCB('cpu')" in repr(group)
    for name in ("BasicTrainCB()", "MetricsCB", "ProgressCB", "ActivationStatsCB"): assert name in repr(group)
