"""The Trainer: its state in each phase, the callback set (names, groups, order, fit-only callbacks), when the plan is
built. The event order is in tests/test_events.py, the cancels and errors in tests/test_exceptions.py and
tests/test_trainer_errors.py."""
import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, Callback, CallbackError, CallbackSetupError, EVENTS, Trainer


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


def test_callbacks_reachable_by_class_name_and_duplicates(tiny_dls, tiny_model):
    tr = make_trainer(tiny_dls, tiny_model, Trace())
    assert isinstance(tr.BasicTrainCB, BasicTrainCB)
    with pytest.raises(CallbackSetupError, match="already on this trainer.*force=True"):
        tr.add_callbacks(Trace())
    second = Trace()
    tr.add_callbacks(second, force=True)
    assert tr.Trace_2 is second
    with pytest.raises(AttributeError, match="no attribute or callback 'Nope'"):
        tr.Nope


def test_callback_name_must_not_hide_trainer_attributes(tiny_dls, tiny_model):
    fit = type("fit", (), {})
    with pytest.raises(CallbackSetupError, match="hide the trainer's own `fit`"):
        make_trainer(tiny_dls, tiny_model, fit())


def test_groups_are_added_recursively_and_run_their_own_events(tiny_dls, tiny_model):
    calls = []

    class Leaf:
        order = -1
        def before_fit(self, trainer): calls.append("Leaf")

    class Inner:
        def __init__(self): self.callbacks = [Leaf()]

    class Group:
        def __init__(self): self.callbacks = [Inner()]
        def before_fit(self, trainer): calls.append("Group")

    tr = make_trainer(tiny_dls, tiny_model, Group())
    assert all(hasattr(tr, n) for n in ("Group", "Inner", "Leaf"))
    tr.fit(1)
    assert calls == ["Leaf", "Group"]
    tr.remove_callbacks(tr.Group)
    assert not any(hasattr(tr, n) for n in ("Group", "Inner", "Leaf"))


def test_order_ties_keep_insertion_order(tiny_dls, tiny_model):
    calls = []
    cbs = [type(f"C{i}", (), {"order": o, "before_fit": (lambda i: lambda self, t: calls.append(i))(i)})()
           for i, o in enumerate([0, 1, 0, -1, 1, 0])]
    make_trainer(tiny_dls, tiny_model, *cbs).fit(0)
    assert calls == [3, 0, 2, 5, 1, 4]


def test_fit_callbacks_are_removed_afterwards_even_on_error(tiny_dls, tiny_model):
    class Boom:
        def after_batch(self, trainer): raise RuntimeError("boom")
    tr = make_trainer(tiny_dls, tiny_model)
    tr.fit(1, callbacks=[Trace()])
    assert not hasattr(tr, "Trace")
    with pytest.raises(CallbackError):
        tr.fit(1, callbacks=[Boom()])
    assert not hasattr(tr, "Boom") and [type(c).__name__ for c in tr.cbs] == ["BasicTrainCB"]
    tr.fit(1)  # the same trainer fits again


def test_plan_is_built_when_the_set_changes_not_per_batch(tiny_dls, tiny_model, monkeypatch):
    calls = []
    import AIsaac.dispatch as dispatch_mod
    real = dispatch_mod.build_plan
    monkeypatch.setattr(dispatch_mod, "build_plan", lambda *a: calls.append(1) or real(*a))
    tr = make_trainer(tiny_dls, tiny_model)
    n = len(calls)
    tr.fit(2)
    assert len(calls) == n
    tr.fit(1, callbacks=[Trace()])
    assert len(calls) == n + 2  # added, then removed


def test_unknown_event_names_the_nearest(tiny_dls, tiny_model):
    tr = make_trainer(tiny_dls, tiny_model)
    with pytest.raises(ValueError, match="'after_bach' is not an event; did you mean 'after_batch'"):
        tr.run_callbacks("after_bach")


def test_model_as_keyword_and_no_callbacks(tiny_dls, tiny_model):
    tr = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.Adam, model=tiny_model)
    before = [p.clone() for p in tiny_model.parameters()]
    # No callback does the training step: refused at fit start instead of running and training nothing.
    with pytest.raises(CallbackSetupError, match="No callback does the step phases predict.*Add BasicTrainCB"):
        tr.fit(1)
    assert tr.cbs == [] and all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))
