"""CallbackSet, the trainer's callbacks: names and duplicates, groups, order ties, fit-only callbacks, when the plan is
built, the read-only views, wrapping the plan, and reaching a callback by name or by class."""
import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, Callback, CallbackError, CallbackSetupError, EVENTS, MetricsCB, Trainer


class Trace(Callback):
    observes = ("predict", "get_loss", "backward", "step", "zero_grad")  # records them beside BasicTrainCB

    def __init__(self): self.events = []


for _ev in EVENTS:
    setattr(Trace, _ev, (lambda ev: lambda self, trainer: self.events.append((ev, trainer.training)))(_ev))


def make_trainer(dls, model, *cbs):
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model, callbacks=[BasicTrainCB(), *cbs])


def test_callbacks_reachable_by_class_name_and_duplicates(tiny_dls, tiny_model):
    tr = make_trainer(tiny_dls, tiny_model, Trace())
    assert isinstance(tr.BasicTrainCB, BasicTrainCB)
    with pytest.raises(CallbackSetupError, match="already on this trainer.*force=True"):
        tr.add_callbacks(Trace())
    second = Trace()
    tr.add_callbacks(second, force=True)
    assert tr.Trace_2 is second
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        tr.Nope
    assert "Trace_2" in dir(tr)  # what Python's "Did you mean" reads for a misspelt name
    # Plain attributes, not a __getattr__ (which would make every attribute read on a trainer the slow kind).
    assert not hasattr(Trainer, "__getattr__")
    # Removed, the name is gone; a callback of that class can then take it again.
    tr.remove_callbacks(second)
    assert not hasattr(tr, "Trace_2") and "Trace_2" not in tr.named_callbacks
    tr.remove_callbacks(tr.Trace)
    assert not hasattr(tr, "Trace")
    third = Trace()
    tr.add_callbacks(third)
    assert tr.Trace is third and tr.named_callbacks["Trace"] is third


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


def test_callback_by_class_is_typed_and_says_what_is_there(tiny_dls, tiny_model):
    metrics = MetricsCB()
    tr = make_trainer(tiny_dls, tiny_model, metrics)
    assert tr.callback(MetricsCB) is metrics and tr.callback(BasicTrainCB) is tr.BasicTrainCB
    with pytest.raises(LookupError, match="No Trace on this trainer; its callbacks are: BasicTrainCB, MetricsCB"):
        tr.callback(Trace)


def test_views_are_read_only_copies(tiny_dls, tiny_model):
    tr = make_trainer(tiny_dls, tiny_model, Trace())
    cbs = tr.cbs
    cbs.clear()
    assert [type(c).__name__ for c in tr.cbs] == ["BasicTrainCB", "Trace"]
    with pytest.raises(TypeError): tr.named_callbacks["X"] = 1  # type: ignore[index]
    with pytest.raises(TypeError): tr.plan["before_fit"] = ()  # type: ignore[index]
    assert [m.__self__ for m in tr.plan["after_batch"]] == [tr.Trace]


def test_wrap_plan_runs_every_method_through_the_wrapper_also_after_the_set_changes(tiny_dls, tiny_model):
    seen = []

    def wrapper(event, name, method):
        def run(trainer): seen.append((event, name)); return method(trainer)
        return run

    tr = make_trainer(tiny_dls, tiny_model)
    tr.wrap_plan(wrapper)
    tr.add_callbacks(Trace())  # the plan is rebuilt: still wrapped
    tr.fit(1)
    assert ("after_batch", "Trace") in seen and ("predict", "BasicTrainCB") in seen
    assert tr.Trace.events  # the wrapped methods ran
    n = len(seen)
    tr.wrap_plan(None)
    tr.fit(1)
    assert len(seen) == n
