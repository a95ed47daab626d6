"""The exceptions, each in its documented scope on a real fit: a cancel raised before, inside and after what it cancels
skips the rest of that scope only (its cleanup still runs); any other error runs every cleanup and comes out as a
CallbackError naming the callback and the place, that is also an instance of the original's class."""
import pytest
import torch
from torch import nn

from AIsaac.all import (BasicTrainCB, CallbackError, CancelBatchException, CancelEpochException, CancelFitException,
                        EVENTS, Trainer)
from AIsaac.events import EXCLUSIVE_PHASES
from AIsaac.exceptions import CANCEL_EXCEPTIONS, add_note, callback_error

LEVEL = {CancelBatchException: "batch", CancelEpochException: "epoch", CancelFitException: "fit"}
# The event that is "inside" each level: the next level down (a batch's step phase is inside the batch).
INSIDE = {"batch": "get_loss", "epoch": "before_batch", "fit": "before_epoch"}


class Trace:
    order = -1  # logs each event before Raise (order 0) can raise in it
    observes = EXCLUSIVE_PHASES  # runs beside BasicTrainCB's step phases

    def __init__(self): self.events = []


for _ev in EVENTS: setattr(Trace, _ev, (lambda ev: lambda self, trainer: self.events.append(ev))(_ev))


class Raise:
    """Raises `exc` once at `event`: in the training phase of epoch 0 (at its batch 1 for batch events)."""

    observes = EXCLUSIVE_PHASES

    def __init__(self, exc, event):
        def method(trainer):
            if self.done: return
            if "epoch" in event or event in ("before_batch", "get_loss", "after_batch"):
                if not trainer.training or trainer.epoch != 0: return
                if "epoch" not in event and trainer.batch_num != 1: return
            self.done = True
            raise exc()
        self.done = False
        setattr(self, event, method)


@pytest.mark.parametrize("exc", [CancelBatchException, CancelEpochException, CancelFitException])
@pytest.mark.parametrize("where", ["before", "inside", "after"])
def test_cancel(tiny_dls, tiny_model, exc, where):
    level = LEVEL[exc]
    event = {"before": f"before_{level}", "inside": INSIDE[level], "after": f"after_{level}"}[where]
    t = Trace()
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model,
            callbacks=[BasicTrainCB(), Raise(exc, event), t]).fit(2)
    ev = t.events
    assert ev.count(f"before_{level}") == ev.count(f"cleanup_{level}")  # cleanup always runs
    assert ev[-1] == "cleanup_fit"
    skipped = 0 if where == "after" else 1  # raised in after_X: after_X itself had run (for the tracer)
    n_batches = 2 * (6 + 3)  # 2 epochs of 6 training and 3 validation batches
    if exc is CancelBatchException:  # only that batch is cut short; the fit goes on to the end
        assert ev.count("cleanup_batch") == n_batches and ev.count("after_batch") == n_batches - skipped
        assert ev.count("step") == 12 - skipped and "after_fit" in ev
    elif exc is CancelEpochException:  # that training phase stops; its validation and epoch 1 still run
        assert ev.count("cleanup_epoch") == 4 and ev.count("after_epoch") == 4 - skipped and "after_fit" in ev
        assert ev.count("step") == {"before": 6, "inside": 6 + 1, "after": 12}[where]
    else:  # the fit stops where it is
        assert ev.count("before_epoch") == {"before": 0, "inside": 1, "after": 4}[where]
        assert ("after_fit" in ev) == (where == "after")


@pytest.mark.parametrize("event", ["before_fit", "before_epoch", "predict", "after_batch", "after_epoch", "after_fit"])
def test_other_exceptions_still_run_every_cleanup(tiny_dls, tiny_model, event):
    class Boom(Exception): pass
    t = Trace()
    with pytest.raises(Exception) as info:
        Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model,
                callbacks=[BasicTrainCB(), Raise(Boom, event), t]).fit(2)
    assert isinstance(info.value.__cause__, Boom)
    for level in ("batch", "epoch", "fit"):
        assert t.events.count(f"before_{level}") == t.events.count(f"cleanup_{level}")
    assert t.events[-1] == "cleanup_fit"


def test_cancel_fit_in_before_fit_runs_only_cleanup_fit(tiny_dls, tiny_model):
    t = Trace()
    model_before = [p.detach().clone() for p in tiny_model.parameters()]
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model,
            callbacks=[BasicTrainCB(), Raise(CancelFitException, "before_fit"), t]).fit(2)
    assert t.events == ["before_fit", "cleanup_fit"]  # the tracer's before_fit ran first (order -1); nothing after
    assert all(torch.equal(a, b) for a, b in zip(model_before, tiny_model.parameters()))  # no batch trained


def test_the_cancels_are_the_three_and_none_is_an_error_of_another_kind():
    assert CANCEL_EXCEPTIONS == (CancelBatchException, CancelEpochException, CancelFitException)
    assert not any(issubclass(c, (CallbackError, RuntimeError, ValueError)) for c in CANCEL_EXCEPTIONS)


class TrialPruned(Exception):
    """Like optuna.TrialPruned: an exception class from another library."""

    def __init__(self, msg, trial=None):
        super().__init__(msg)
        self.trial = trial


def test_callback_error_is_also_the_original_class_and_keeps_its_attributes():
    original = TrialPruned("trial 3 pruned", trial=3)
    err = callback_error("Pruner", "after_epoch", "epoch 0, validation", original)
    assert isinstance(err, CallbackError) and isinstance(err, TrialPruned)
    assert (err.callback, err.event, err.where, err.original, err.trial) == ("Pruner", "after_epoch",
                                                                              "epoch 0, validation", original, 3)
    assert str(err) == "Pruner failed at event 'after_epoch' (epoch 0, validation): TrialPruned: trial 3 pruned"
    assert type(callback_error("X", "step", "w", TrialPruned("again"))) is type(err)  # one class per original class


@pytest.mark.xfail(strict=True, raises=TypeError, reason="callback_error builds CallbackError[OSError] but "
                   "BaseException.__new__ refuses it (TypeError: not safe), so the OSError is lost")
def test_an_os_error_out_of_fit_is_itself_with_a_note_naming_the_callback(tiny_dls, tiny_model):
    # OSError (a disk full under CheckpointCB, say) has its own memory layout: no class can be both it and a
    # CallbackError, so the original comes out, errno and all, with a note (PEP 678) saying where it was raised.
    original = OSError(28, "No space left on device")

    class Disk:
        def after_batch(self, trainer):
            if trainer.batch_num == 1: raise original
    with pytest.raises(OSError) as info:
        Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), Disk()]).fit(1)
    assert info.value is original and info.value.errno == 28
    assert info.value.__notes__ == ["Raised by Disk at event 'after_batch' (epoch 0, batch 1, training)."]


def test_add_note_keeps_notes_in_order():
    err = ValueError("x")
    add_note(err, "first")
    add_note(err, "second")
    assert err.__notes__ == ["first", "second"]


def test_a_foreign_exception_out_of_fit_is_caught_by_its_own_class_and_names_the_callback(tiny_dls, tiny_model):
    class Pruner:
        def after_epoch(self, trainer):
            if not trainer.training: raise TrialPruned("trial 3 pruned")
    t = Trace()
    with pytest.raises(TrialPruned) as info:
        Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), Pruner(), t]).fit(2)
    e = info.value
    assert str(e) == "Pruner failed at event 'after_epoch' (epoch 0, validation): TrialPruned: trial 3 pruned"
    assert isinstance(e, CallbackError) and isinstance(e.original, TrialPruned) and e.__cause__ is e.original
    assert t.events[-2:] == ["cleanup_epoch", "cleanup_fit"] and "after_fit" not in t.events
