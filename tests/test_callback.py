"""Callback, the optional base, and the reading of any object as a callback: groups flattened, iterables of every kind
taken, callbacks that cannot run refused when added, misspelt and other libraries' event names warned about."""
import gc
import sys
import warnings

import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, Callback, CallbackSetupError, MetricsCB, Trainer
from AIsaac.callback import as_callback_list, event_methods, flatten_callbacks


def trainer(dls, model, *cbs):
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model, list(cbs))


def weights(model): return [p.detach().clone() for p in model.parameters()]


# ---- the base class is optional ----
def test_a_plain_object_trains_exactly_like_a_callback_subclass(tiny_dls):
    class PlainStep:  # the seed tutorial's BasicTrainCB, as a plain class
        def predict(self, trainer): trainer.preds = trainer.model(trainer.batch[0])
        def get_loss(self, trainer): trainer.loss = trainer.loss_func(trainer.preds, trainer.batch[1])
        def backward(self, trainer): trainer.loss.backward()
        def step(self, trainer): trainer.opt.step()
        def zero_grad(self, trainer): trainer.opt.zero_grad()

    SubclassStep = type("SubclassStep", (Callback,), {k: v for k, v in vars(PlainStep).items() if k[0] != "_"})
    results = []
    for step in (PlainStep(), SubclassStep()):
        torch.manual_seed(0)
        model = nn.Linear(6, 3)
        trainer(tiny_dls, model, step).fit(2, lr=0.1)
        results.append(weights(model))
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # the same two epochs in plain PyTorch
        for xb, yb in tiny_dls.train:
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            opt.zero_grad()
    for got in results:
        for a, b in zip(got, model.parameters()): torch.testing.assert_close(a, b, rtol=0, atol=0)
    cb = SubclassStep()
    assert (cb.order, cb.claims, cb.observes, cb.side_runs, repr(cb)) == (0, (), (), True, "SubclassStep()")


def test_event_methods_gives_the_bound_method_or_none():
    class OnlyFit(Callback):
        def before_fit(self, trainer): pass
        after_fit = "not callable"
    cb = OnlyFit()
    assert event_methods(cb, "before_fit") == cb.before_fit
    assert event_methods(cb, "after_fit") is None and event_methods(cb, "after_batch") is None


# ---- groups and iterables ----
def test_groups_flatten_depth_first_in_the_order_added_each_callback_once():
    leaf, other = BasicTrainCB(), MetricsCB()
    inner = type("Inner", (), {})()
    inner.callbacks = [leaf]
    group = type("Group", (), {})()
    group.callbacks = [inner, other, leaf]  # leaf twice: added once
    assert flatten_callbacks([group, (other,)]) == [group, inner, leaf, other]
    group.callbacks.append(group)
    with pytest.raises(ValueError, match="Group contains itself through its `callbacks` attribute"):
        flatten_callbacks([group])


def test_any_iterable_of_callbacks_is_taken_and_a_set_in_class_name_order():
    a, b = MetricsCB(), BasicTrainCB()
    assert as_callback_list({a, b}) == [b, a]  # sets have no order: by class name, so every run plans the same
    assert as_callback_list((cb for cb in [a, b])) == [a, b] and as_callback_list(iter([[a], (b,)])) == [a, b]
    assert as_callback_list(a) == [a]


@pytest.mark.parametrize("kind", ["set", "generator", "iterator"])
def test_callbacks_as_a_set_generator_or_iterator_all_train(tiny_dls, tiny_model, kind):
    cbs = [BasicTrainCB(), MetricsCB()]
    given = {"set": set(cbs), "generator": (cb for cb in cbs), "iterator": iter(cbs)}[kind]
    t = trainer(tiny_dls, tiny_model, given)
    before = weights(tiny_model)
    t.fit(1, lr=0.1)
    assert set(t.named_callbacks) == {"BasicTrainCB", "MetricsCB"}
    assert any(not torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))


# ---- refused or warned about when added ----
@pytest.mark.parametrize("cb, match", [
    (BasicTrainCB, r"BasicTrainCB is a class; pass an instance of it: BasicTrainCB\(\)"),
    (type("Ordered", (Callback,), {"order": "5"})(), r"Ordered.order must be a number .*got '5'"),
    (type("Flag", (Callback,), {"order": True})(), r"Flag.order must be a number .*got True"),
    (type("Typo", (Callback,), {"claims": ("stepp",)})(), r"Typo.claims names 'stepp'.*did you mean 'step'"),
    (type("Bare", (Callback,), {"observes": "step"})(), r"Bare.observes must be a tuple of step phase names"),
])
def test_a_callback_that_cannot_run_is_refused_when_added(tiny_dls, tiny_model, cb, match):
    t = trainer(tiny_dls, tiny_model, BasicTrainCB())
    with pytest.raises(CallbackSetupError, match=match): t.add_callbacks([cb])
    assert list(t.named_callbacks) == ["BasicTrainCB"]


def test_misspelt_event_methods_warn_with_the_nearest_name_and_other_methods_do_not(tiny_dls, tiny_model):
    class Typo:
        def after_bach(self, trainer): pass
        def before_epochs(self, trainer): pass
        def helper(self): pass
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        trainer(tiny_dls, tiny_model, BasicTrainCB(), Typo())
    msgs = sorted(str(x.message) for x in w)
    assert len(msgs) == 2
    assert "Typo.after_bach looks like the event 'after_batch'" in msgs[0] and "rename it to 'after_batch'" in msgs[0]
    assert "Typo.before_epochs looks like the event 'before_epoch'" in msgs[1]
    # The class's names are matched once (kept for the next trainer), and every trainer built with it still warns;
    # a misspelt name set on one instance is found for that instance.
    odd = Typo()
    odd.befor_fit = lambda trainer: None
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        trainer(tiny_dls, tiny_model, BasicTrainCB(), odd)
    assert sorted(str(x.message).split(" looks")[0] for x in w) == ["Typo.after_bach", "Typo.befor_fit",
                                                                    "Typo.before_epochs"]


@pytest.mark.parametrize("name, use", [("after_step", "zero_grad"), ("after_pred", "get_loss"),
                                       ("after_loss", "before_backward"), ("after_backward", "step"),
                                       ("before_train", "before_epoch"), ("on_epoch_end", "after_epoch")])
def test_other_libraries_event_names_warn_with_the_event_to_use(tiny_dls, tiny_model, name, use):
    cb = type("FastaiStyle", (Callback,), {name: lambda self, trainer: None})()
    with pytest.warns(UserWarning, match=f"FastaiStyle.{name} is not an AIsaac event.*use {use}"):
        trainer(tiny_dls, tiny_model, BasicTrainCB(), cb)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="before CPython 3.11 every instance has its __dict__ built")
def test_adding_a_callback_does_not_build_its_dict(tiny_dls, tiny_model):
    # CPython keeps a plain instance's attributes in a compact form until something asks for its __dict__; once built,
    # the callback's attribute reads take a slower path at every batch. The misspelt-event check must not build it.
    class Plain(Callback):
        def __init__(self): self.n, self.label = 1, "x"
        def after_batch(self, trainer): self.n += 1
    def built(cb): return any(type(r) is dict for r in gc.get_referents(cb))
    cb = Plain()
    assert not built(cb)
    t = trainer(tiny_dls, tiny_model, BasicTrainCB(), cb)
    t.fit(1, 0.1)
    assert not built(cb) and cb.n > 1
