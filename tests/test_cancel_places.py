"""Each cancel exception raised before, inside and after what it cancels, on a real fit."""
import pytest
import torch
from torch import nn

from AIsaac.all import (BasicTrainCB, CancelBatchException, CancelEpochException, CancelFitException, EVENTS,
                        Trainer)
from AIsaac.events import EXCLUSIVE_PHASES

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
