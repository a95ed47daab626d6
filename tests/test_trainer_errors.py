"""A fit that fails, is interrupted, or is fed bad input: what the user sees, and what state is left behind."""
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (ActivationStatsCB, BasicTrainCB, Callback, CallbackError, CallbackSetupError, DataLoaders,
                        DeviceCB, MetricsCB, Trainer)
from AIsaac.events import EVENTS


def make_dls(x=None, y=None, n=12, bs=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g) if x is None else x
    y = torch.randint(0, 2, (n,), generator=g) if y is None else y
    ds = TensorDataset(x, y)
    return DataLoaders(DataLoader(ds, batch_size=bs, shuffle=True), DataLoader(ds, batch_size=bs))


def make_trainer(callbacks=(), dls=None, model=None):
    torch.manual_seed(0)
    model = model if model is not None else nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    return Trainer(dls or make_dls(), nn.CrossEntropyLoss(), torch.optim.SGD, model, [BasicTrainCB(), *callbacks])


class Recorder(Callback):
    """Counts every event it sees."""

    order = -100
    observes = ("predict", "get_loss", "backward", "step", "zero_grad")

    def __init__(self):
        self.counts = dict.fromkeys(EVENTS, 0)
        for ev in EVENTS: setattr(self, ev, self._count(ev))

    def _count(self, ev):
        def f(trainer): self.counts[ev] += 1
        return f


class FailAt(Callback):
    def __init__(self, event, epoch, batch, exc):
        self.where, self.exc = (epoch, batch), exc
        setattr(self, event, self._maybe_fail)

    def _maybe_fail(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.where: raise self.exc


def assert_scopes_closed(counts):
    for level in ("batch", "epoch", "fit"): assert counts[f"before_{level}"] == counts[f"cleanup_{level}"], level


# ---- failure inside a fit ----
def test_callback_error_names_callback_event_epoch_batch_and_chains_the_original():
    original = ZeroDivisionError("bad arithmetic")
    rec, stats = Recorder(), ActivationStatsCB()
    trainer = make_trainer([rec, stats])
    with pytest.raises(CallbackError) as info:
        trainer.fit(2, lr=0.1, callbacks=[FailAt("after_batch", 1, 2, original), MetricsCB()])
    err = info.value
    assert "FailAt failed at event 'after_batch' (epoch 1, batch 2, training): ZeroDivisionError: bad arithmetic" \
        == str(err)
    assert (err.callback, err.event, err.original) == ("FailAt", "after_batch", original)
    assert err.__cause__ is original
    assert_scopes_closed(rec.counts)  # every cleanup_* ran
    assert rec.counts["after_fit"] == 0 and rec.counts["cleanup_fit"] == 1
    assert all(not m._forward_hooks for m in trainer.model.modules())  # ActivationStatsCB's hooks are gone
    assert [type(cb).__name__ for cb in trainer.cbs] == ["BasicTrainCB", "Recorder", "ActivationStatsCB"]
    assert "FailAt" not in trainer.named_callbacks and "MetricsCB" not in trainer.named_callbacks
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit(1, lr=0.1)  # the same trainer fits again
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert rec.counts["after_fit"] == 1


def test_keyboard_interrupt_stops_at_once_cleans_up_and_leaves_model_and_optimizer_usable():
    rec = Recorder()
    trainer = make_trainer([rec, ActivationStatsCB()])
    with pytest.raises(KeyboardInterrupt):  # not wrapped: Ctrl-C stays Ctrl-C
        trainer.fit(3, lr=0.1, callbacks=[FailAt("before_batch", 0, 1, KeyboardInterrupt())])
    assert rec.counts["predict"] == 1  # stopped at once: batch 1 was not run
    assert_scopes_closed(rec.counts)
    assert all(not m._forward_hooks for m in trainer.model.modules())
    assert "FailAt" not in trainer.named_callbacks
    loss = trainer.loss_func(trainer.model(torch.randn(2, 3)), torch.tensor([0, 1]))
    loss.backward()
    trainer.opt.step()  # the optimizer of the interrupted fit still works
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    trainer.fit(1, lr=0.1)


# ---- bad arguments and callback sets ----
@pytest.mark.parametrize("lr", [0, -1e-3, float("nan"), "0.1"])
def test_lr_must_be_positive(lr):
    with pytest.raises(ValueError, match="lr must be a number > 0"): make_trainer().fit(1, lr=lr)


@pytest.mark.parametrize("n", [-1, 1.5, True])
def test_n_epochs_must_be_a_whole_number(n):
    with pytest.raises(ValueError, match="n_epochs must be a whole number >= 0"): make_trainer().fit(n)


def test_opt_func_must_be_callable():
    with pytest.raises(TypeError, match="opt_func must be callable, like torch.optim.Adam"):
        Trainer(make_dls(), nn.CrossEntropyLoss(), "adam", nn.Linear(3, 2))


def test_two_callbacks_claiming_one_step_phase_is_an_error():
    class AmpStep(Callback):
        claims = ("step",)
        def step(self, trainer): pass

    class AccumulateStep(Callback):
        claims = ("step", "zero_grad")
        def step(self, trainer): pass

    trainer = make_trainer([AmpStep()])
    with pytest.raises(CallbackSetupError, match="AmpStep and AccumulateStep both claim the step phase 'step'"):
        trainer.fit(1, callbacks=[AccumulateStep()])
    assert "AccumulateStep" not in trainer.named_callbacks


# ---- bad input ----
@pytest.mark.parametrize("batch, shown", [
    (torch.zeros(4, 3), r"a tensor of shape \(4, 3\)"),
    ((torch.zeros(4, 3),), r"a tuple of 1: \[a tensor of shape \(4, 3\)"),
])
def test_batch_without_targets_for_the_loss(batch, shown):
    dls = DataLoaders([batch], [batch])
    with pytest.raises(CallbackError, match=rf"BasicTrainCB failed at event 'get_loss' \(epoch 0, batch 0, training\): "
                                            rf"TypeError: BasicTrainCB\(n_inp=1\) needs each batch as \(inputs..., "
                                            rf"targets...\) for loss_func, but got {shown}.*Make the DataLoader yield pairs"
                                            rf".*loss_func=None"):
        make_trainer(dls=dls).fit(1)


def test_mapping_batch_for_a_model_without_those_keywords():
    batch = {"image": torch.zeros(4, 3), "label": torch.zeros(4)}
    with pytest.raises(CallbackError, match=r"'predict'.*passes a mapping batch as keyword arguments, model\(\*\*batch\)"
                                            r".*keys \['image', 'label'\].*inputs=\[...\], targets=\[...\]"):
        make_trainer(dls=DataLoaders([batch], [batch])).fit(1)


def test_fewer_items_than_inputs():
    batch = (torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(CallbackError, match=r"BasicTrainCB\(n_inp=3\) takes the first 3 items.*a tuple of 2"):
        Trainer(DataLoaders([batch], [batch]), nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(3, 2),
                [BasicTrainCB(n_inp=3)]).fit(1)


def test_labels_outside_the_models_classes():
    y = torch.tensor([0, 1, 5, 1, 0, 1, 1, 0])
    with pytest.raises(CallbackError, match=r"get_loss.*Labels \[5\] are not among the model's 2 classes \(0 to 1\)"
                                            r".*at least 6"):
        make_trainer(dls=make_dls(y=y, n=8, bs=8)).fit(1)
    with pytest.raises(CallbackError, match=r"Labels \[-3\]"):
        make_trainer(dls=make_dls(y=torch.tensor([0, -3, 1, 1]), n=4)).fit(1)


def test_ignore_index_labels_are_allowed():
    y = torch.tensor([0, 1, -100, 1])
    trainer = make_trainer(dls=make_dls(y=y, n=4))
    trainer.fit(1, lr=0.1)


def test_model_and_batch_on_different_devices_suggests_devicecb():
    model = nn.Linear(3, 2, device="meta")  # stands for a model on a GPU fed CPU batches
    with pytest.raises(CallbackError, match=r"The model is on meta but the batch is on cpu\. Add DeviceCB\(\)"):
        make_trainer(model=model).fit(1)
    trainer = make_trainer(model=nn.Linear(3, 2), callbacks=[DeviceCB("cpu")])
    trainer.fit(1)  # and with DeviceCB all is well


@pytest.mark.filterwarnings("ignore:The validation loss")
def test_non_finite_loss_warns_naming_the_first_bad_batch():
    x = torch.randn(12, 3)
    x[5] = float("nan")
    dls = DataLoaders(DataLoader(TensorDataset(x, torch.zeros(12, dtype=torch.long)), batch_size=4),
                      DataLoader(TensorDataset(torch.randn(4, 3), torch.zeros(4, dtype=torch.long)), batch_size=4))
    trainer = make_trainer(dls=dls, callbacks=[MetricsCB()])
    with pytest.warns(RuntimeWarning, match=r"The training loss was nan at epoch 0, batch 1 \(the first non-finite "
                                            r"one of this phase\); the weights are likely ruined.*TerminateOnNaNCB"):
        trainer.fit(1, lr=0.1)


def test_finite_losses_do_not_warn():
    trainer = make_trainer(callbacks=[MetricsCB()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.fit(2, lr=0.1)
