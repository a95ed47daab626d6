"""add_callback(s) and remove_callback(s): the original's functions, on a real trainer, doing what its methods do."""
import pytest
import torch
from torch import nn

from AIsaac.all import (BasicTrainCB, CallbackSetupError, CoreCBs, MetricsCB, Trainer, add_callback, add_callbacks,
                        remove_callback, remove_callbacks)


def trainer(tiny_dls, tiny_model, *cbs):
    return Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, list(cbs))


def test_add_then_train_then_remove(tiny_dls, tiny_model):
    t = trainer(tiny_dls, tiny_model)
    basic, metrics = BasicTrainCB(), MetricsCB()
    assert add_callback(t, basic) == [basic] and add_callback(t, None) == []
    assert add_callbacks(t, [metrics, None]) == [metrics]
    assert t.BasicTrainCB is basic and t.MetricsCB is metrics
    w = tiny_model.weight.clone()
    t.fit(1, lr=0.1)
    assert not torch.equal(w, tiny_model.weight) and len(metrics.losses_epoch) == 1
    remove_callback(t, metrics)
    assert "MetricsCB" not in t.named_callbacks and t.cbs == [basic]
    remove_callbacks(t, ["BasicTrainCB"])  # by name works too
    assert t.cbs == [] and dict(t.plan)["predict"] == ()


def test_force_adds_a_second_one_under_a_new_name(tiny_dls, tiny_model):
    t = trainer(tiny_dls, tiny_model, BasicTrainCB(), MetricsCB())
    with pytest.raises(CallbackSetupError, match="already on this trainer"): add_callback(t, MetricsCB())
    second = MetricsCB()
    add_callback(t, second, force=True)
    assert t.MetricsCB_2 is second
    t.fit(1)
    assert t.MetricsCB.losses_epoch == second.losses_epoch  # both saw the same fit


def test_groups_come_and_go_with_their_members(tiny_dls, tiny_model):
    t = trainer(tiny_dls, tiny_model)
    group = CoreCBs("cpu")
    add_callback(t, group)
    assert {"CoreCBs", "DeviceCB", "BasicTrainCB", "MetricsCB", "ProgressCB", "ActivationStatsCB"} == set(t.named_callbacks)
    remove_callback(t, group)
    assert t.cbs == []


def test_removing_what_is_not_there_says_so(tiny_dls, tiny_model):
    t = trainer(tiny_dls, tiny_model, BasicTrainCB())
    with pytest.raises(ValueError, match="not on the trainer.*remove_callback\\(trainer, 'MetricsCB'\\)"):
        remove_callback(t, MetricsCB())
    with pytest.raises(ValueError, match="No callback named 'MetricsCB'.*BasicTrainCB"): remove_callbacks(t, ["MetricsCB"])
    with pytest.raises(ValueError, match="No callback named"): remove_callbacks(t, [t.BasicTrainCB, "Nope"])
    assert [type(c).__name__ for c in t.cbs] == ["BasicTrainCB"]  # nothing removed when one of them is wrong
