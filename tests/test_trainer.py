"""The Trainer: its state in each phase and its arguments. The callback set is in tests/test_callback_set.py, the event order is in tests/test_events.py, the cancels and errors in tests/test_exceptions.py and
tests/test_trainer_errors.py."""
import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, Callback, CallbackSetupError, EVENTS, Trainer


class Trace(Callback):
    observes = ("predict", "get_loss", "backward", "step", "zero_grad")  # records them beside BasicTrainCB

    def __init__(self): self.events = []


for _ev in EVENTS:
    setattr(Trace, _ev, (lambda ev: lambda self, trainer: self.events.append((ev, trainer.training)))(_ev))


def make_trainer(dls, model, *cbs):
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model, callbacks=[BasicTrainCB(), *cbs])


def test_fit_state_and_optimizer(tiny_dls, tiny_model):
    seen = {}

    class Look:
        def before_fit(self, trainer): seen.update(opt=trainer.opt, lr=trainer.lr, n=trainer.n_epochs)
        def before_epoch(self, trainer):
            seen.setdefault("modes", []).append((trainer.training, trainer.model.training, torch.is_grad_enabled(),
                                                 trainer.dl is (trainer.dls.train if trainer.training else trainer.dls.valid)))
        def after_batch(self, trainer): seen["last"] = (trainer.epoch, trainer.batch_num, trainer.preds.shape, trainer.loss.ndim)

    tr = make_trainer(tiny_dls, tiny_model, Look())
    tr.fit(2, lr=0.05)
    assert isinstance(seen["opt"], torch.optim.SGD) and seen["opt"].param_groups[0]["lr"] == 0.05
    assert seen["lr"] == 0.05 and seen["n"] == 2
    assert seen["modes"] == [(True, True, True, True), (False, False, False, True)] * 2
    assert seen["last"] == (1, 2, (8, 3), 0)


def test_fit_only_validation_or_only_training(tiny_dls, tiny_model):
    t = Trace()
    tr = make_trainer(tiny_dls, tiny_model, t)
    before = [p.clone() for p in tiny_model.parameters()]
    tr.fit(1, train=False)
    assert {tr_ for e, tr_ in t.events if e == "predict"} == {False}
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))
    t.events.clear()
    tr.fit(1, valid=False)
    assert {tr_ for e, tr_ in t.events if e == "predict"} == {True}


def test_model_as_keyword_and_no_callbacks(tiny_dls, tiny_model):
    tr = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.Adam, model=tiny_model)
    before = [p.clone() for p in tiny_model.parameters()]
    # No callback does the training step: refused at fit start instead of running and training nothing.
    with pytest.raises(CallbackSetupError, match="No callback does the step phases predict.*Add BasicTrainCB"):
        tr.fit(1)
    assert tr.cbs == [] and all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))


def test_the_trainers_own_attributes_are_slots_so_its_dict_holds_only_the_callbacks(tiny_dls, tiny_model):
    """CPython reads slots the fast way however many an object has, while an object whose dict holds more than 30
    names loses its fast method calls: every piece of the loop's state is a slot, the callbacks' names are in the
    dict. Before a fit the slots already hold their defaults."""
    from AIsaac.all import MetricsCB
    tr = make_trainer(tiny_dls, tiny_model, MetricsCB())
    assert (tr.step, tr.xb, tr.yb, tr.out, tr.preds, tr.loss, tr.epoch_log, tr.n_inp) == (0, (), (), None, None, None,
                                                                                            None, 1)
    tr.fit(1)
    assert set(vars(tr)) == {"BasicTrainCB", "MetricsCB"}
    assert {"batch", "xb", "yb", "out", "preds", "loss", "step", "training", "opt", "_calls"} <= set(Trainer.__slots__)
    tr.anything_of_yours = 1  # what a callback or a user sets goes into the dict
    assert vars(tr)["anything_of_yours"] == 1
