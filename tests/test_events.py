"""The declared events: a real fit calls each of them, in the declared order, and nothing else; the step phases that
one callback does; the nearest event to a misspelt name."""
import warnings

import pytest
import torch
from torch import nn

from AIsaac.all import EVENTS, BasicTrainCB, Callback, Trainer
from AIsaac.events import BATCH_EVENTS, EPOCH_EVENTS, EXCLUSIVE_PHASES, FIT_EVENTS, STEP_PHASES, nearest_event


class Trace(Callback):
    """Records (event, training) at every declared event, beside the callback doing the step phases."""

    observes = EXCLUSIVE_PHASES

    def __init__(self): self.events = []


for _ev in EVENTS:
    setattr(Trace, _ev, (lambda ev: lambda self, trainer: self.events.append((ev, trainer.training)))(_ev))


def test_the_event_names_are_the_tutorials():
    # The names users' callbacks are written against (the seed tutorial's); changing one breaks every such callback.
    assert EVENTS == ("before_batch", "predict", "get_loss", "before_backward", "backward", "step", "zero_grad",
                      "after_batch", "cleanup_batch", "before_epoch", "after_epoch", "cleanup_epoch",
                      "before_fit", "after_fit", "cleanup_fit")
    assert set(EVENTS) == {*BATCH_EVENTS, *EPOCH_EVENTS, *FIT_EVENTS} and len(EVENTS) == 15
    assert set(EXCLUSIVE_PHASES) == set(STEP_PHASES) - {"before_backward"}


def test_a_fit_calls_every_declared_event_in_the_declared_order(tiny_dls, tiny_model):
    t = Trace()
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), t]).fit(1)
    evs = [e for e, _ in t.events]
    batch_train = ["before_batch", "predict", "get_loss", "before_backward", "backward", "step", "zero_grad",
                   "after_batch", "cleanup_batch"]
    batch_valid = ["before_batch", "predict", "get_loss", "after_batch", "cleanup_batch"]
    # tiny_dls: 6 training batches, 3 validation batches.
    assert evs == (["before_fit", "before_epoch"] + batch_train * 6 + ["after_epoch", "cleanup_epoch"] +
                   ["before_epoch"] + batch_valid * 3 + ["after_epoch", "cleanup_epoch", "after_fit", "cleanup_fit"])
    assert set(evs) == set(EVENTS)  # every declared event is called
    assert batch_train == list(BATCH_EVENTS)  # a training batch runs its events in the order they are declared
    assert [tr for e, tr in t.events if e == "predict"] == [True] * 6 + [False] * 3


@pytest.mark.parametrize("phase", STEP_PHASES)
def test_two_callbacks_doing_a_step_phase_is_warned_only_for_the_exclusive_ones(tiny_dls, tiny_model, phase):
    calls = []
    second = type("Second", (), {phase: lambda self, trainer: calls.append(trainer.training)})()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), second])
    runs_twice = [str(x.message) for x in w if f"do the step phase '{phase}'" in str(x.message)]
    assert len(runs_twice) == (phase in EXCLUSIVE_PHASES), runs_twice
    if phase == "before_backward":  # an ordinary hook: any number of callbacks use it, each runs once per batch
        t.fit(1, valid=False)
        assert calls == [True] * 6


@pytest.mark.parametrize("name, nearest", [("after_bach", "after_batch"), ("before_epochs", "before_epoch"),
                                           ("cleanup_fits", "cleanup_fit"), ("zero_grads", "zero_grad")])
def test_nearest_event_to_a_misspelt_name(name, nearest):
    assert nearest_event(name) == nearest


def test_nearest_event_is_none_for_an_event_or_an_unrelated_name():
    assert nearest_event("after_batch") is None and nearest_event("helper") is None and nearest_event("fit") is None
    assert nearest_event("stepp", EXCLUSIVE_PHASES) == "step" and nearest_event("before_backwards", EXCLUSIVE_PHASES) \
        is None  # only among the names given
