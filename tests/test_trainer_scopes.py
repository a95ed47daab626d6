"""How a scope ends (AIsaac/trainer.py `_end_scope`, AIsaac/dispatch.py `with_cbs`): `trainer.exception` for the
cleanups, whether a step finished (`in_step`, `trained_to`), and `trainer.processes`, the one place several processes
agree on a stop; and the Trainer's attribute table, the one list the slots and `__init__` are checked against."""
import re

import pytest
import torch
from torch import nn

from AIsaac.all import (BasicTrainCB, CallbackError, CancelBatchException, CancelEpochException, CancelFitException,
                        Trainer)
from AIsaac.runtime.distributed import Processes


def make(dls, model, *cbs): return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, model, [BasicTrainCB(), *cbs])


class Raise:
    """Raises `exc` at `event` of training batch `at` (epoch, batch); records what each cleanup saw."""

    def __init__(self, event, at, exc): self.event, self.at, self.exc, self.seen = event, at, exc, []

    def _maybe(self, t):
        if t.training and (t.epoch, t.batch_num) == self.at: raise self.exc

    def before_batch(self, t):
        if self.event == "before_batch": self._maybe(t)

    def after_batch(self, t):
        if self.event == "after_batch": self._maybe(t)

    def cleanup_batch(self, t):
        if t.training: self.seen.append(("batch", t.batch_num, t.exception, t.in_step, t.trained_to))
    def cleanup_epoch(self, t): self.seen.append(("epoch", t.training, t.exception))
    def cleanup_fit(self, t): self.seen.append(("fit", t.exception))


class StepRaises(BasicTrainCB):
    def __init__(self, at, exc): super().__init__(); self.at, self.exc = at, exc

    def step(self, t):
        super().step(t)
        if (t.epoch, t.batch_num) == self.at: raise self.exc


@pytest.mark.parametrize("exc", [CancelBatchException(), ValueError("boom"), KeyboardInterrupt()])
def test_each_cleanup_is_told_what_ended_its_scope(tiny_dls, tiny_model, exc):
    rec = Raise("after_batch", (0, 2), exc)
    t = make(tiny_dls, tiny_model, rec)
    if isinstance(exc, CancelBatchException): t.fit(1)
    else:
        with pytest.raises(type(exc)): t.fit(1)
    by_batch = {s[1]: s for s in rec.seen if s[0] == "batch"}
    assert by_batch[1][2] is None and by_batch[0][2] is None  # ended normally
    seen = by_batch[2][2]
    if isinstance(exc, ValueError):  # the error as it leaves the scope: wrapped with where it happened
        assert isinstance(seen, CallbackError) and isinstance(seen, ValueError) and seen.original is exc
    else: assert seen is exc
    ends = [s for s in rec.seen if s[0] != "batch"]
    if isinstance(exc, CancelBatchException):  # caught at its level: the phase, the fit ended normally
        assert ends == [("epoch", True, None), ("epoch", False, None), ("fit", None)]
    else:
        assert [s[0] for s in ends] == ["epoch", "fit"] and all(s[-1] is seen for s in ends)
    assert t.exception is None  # only a cleanup event sees it


def test_a_caught_cancel_is_its_scopes_exception(tiny_dls, tiny_model):
    class CancelPhase:
        def before_epoch(self, t):
            if not t.training: raise CancelEpochException()
    rec = Raise("after_batch", None, None)
    t = make(tiny_dls, tiny_model, CancelPhase(), rec)
    t.fit(1)
    epoch_ends = [s for s in rec.seen if s[0] == "epoch"]
    assert epoch_ends[0] == ("epoch", True, None)
    assert not epoch_ends[1][1] and isinstance(epoch_ends[1][2], CancelEpochException)
    assert rec.seen[-1] == ("fit", None)


def test_the_trainer_says_whether_the_step_finished(tiny_dls, tiny_model):
    # After the step, in another callback's after_batch: the later callbacks have not recorded the batch, so it is
    # not finished (in_step); the batch before it is.
    rec = Raise("after_batch", (0, 3), KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt): make(tiny_dls, tiny_model, rec).fit(1)
    assert [s for s in rec.seen if s[0] == "batch"][-1][1:] == (3, rec.exc, True, 3)
    rec = Raise("after_batch", None, None)
    make(tiny_dls, tiny_model, rec).fit(1)
    assert [s[1:] for s in rec.seen if s[0] == "batch"][-1] == (5, None, False, 6)  # each finished batch counted
    # Before the step (before_batch): not in a step, the batch not counted.
    rec = Raise("before_batch", (0, 3), KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt): make(tiny_dls, tiny_model, rec).fit(1)
    assert [s for s in rec.seen if s[0] == "batch"][-1][1:] == (3, rec.exc, False, 3)
    # In the middle of the step (after the optimizer stepped, before zero_grad): in_step.
    rec = Raise("after_batch", None, None)
    t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [StepRaises((0, 3), KeyboardInterrupt()), rec])
    with pytest.raises(KeyboardInterrupt): t.fit(1)
    last = [s for s in rec.seen if s[0] == "batch"][-1]
    assert last[1] == 3 and last[3] is True and last[4] == 3


class Recording(Processes):
    """Several processes, as the kernel sees them: records each hook; `stop` at a cleanup event is what the other
    processes agreed."""
    several = True

    def __init__(self, stop_at=None, stop=None): self.calls, self.stop_at, self.stop, self.pending = [], stop_at, stop, None
    def begin_phase(self): self.calls.append("begin_phase")
    def before_forward(self): self.calls.append("before_forward")
    def gather_batch(self, t): self.calls.append("gather_batch")

    def end_scope(self, cleanup, exception):
        self.calls.append((cleanup, type(exception).__name__ if exception is not None else None))
        if cleanup == self.stop_at: self.stop_at, self.pending = None, self.stop

    def take_stop(self):
        stop, self.pending = self.pending, None
        return stop


def test_the_kernel_asks_the_processes_at_each_scope_and_raises_their_stop_after_the_cleanups(tiny_dls, tiny_model):
    cleaned = []

    class Cleans:
        def cleanup_epoch(self, t): cleaned.append((t.epoch, t.training))

    procs = Recording(stop_at="cleanup_epoch", stop=CancelFitException())  # another process stopped the fit
    t = make(tiny_dls, tiny_model, Cleans())
    t.use_processes(procs)
    t.fit(2)
    # The first training phase: a vote before its first batch, one before each forward, each batch's end, the phase's
    # end (where the stop agreed elsewhere is raised once this process's cleanups ran), then the fit's.
    n_train = len(tiny_dls.train)
    assert procs.calls[:1 + 2 * n_train] == ["begin_phase"] + ["before_forward", ("cleanup_batch", None)] * n_train
    assert procs.calls[1 + 2 * n_train:] == [("cleanup_epoch", None), ("cleanup_fit", "CancelFitException")]
    assert cleaned == [(0, True)] and t.epoch == 0
    # Validation batches are gathered from every process.
    procs = Recording()
    t.use_processes(procs)
    t.fit(1, train=False)
    assert procs.calls.count("gather_batch") == len(tiny_dls.valid)
    t.use_processes(None)
    assert type(t.processes) is Processes and not t.processes.several
    x = torch.ones(2)
    assert t.reduce_sum(x) is x and t.gather_object(1) == [1]


def test_the_attribute_table_is_the_one_list_of_the_trainers_state(tiny_dls, tiny_model):
    """The docstring's Attributes table names every public slot, and `__init__` sets every slot."""
    doc = Trainer.__doc__ or ""
    table = doc[doc.index("Attributes:"):]
    documented = set(re.findall(r"^        (\w+) \(", table, re.M))
    public_slots = {n for n in Trainer.__slots__ if not n.startswith("_")}
    class_attrs = {"events", "preempt_signals"}  # class attributes, documented in the table too
    assert documented - class_attrs == public_slots
    t = make(tiny_dls, tiny_model)
    set_by_fit = set(re.findall(r"^        (\w+) \([^\n]*\): Set by `fit`:", table, re.M))
    unset = {n for n in Trainer.__slots__ if not hasattr(t, n)}
    assert unset <= set_by_fit and "lr" in set_by_fit  # what only a fit can set; every other slot has its default
    t.fit(1)
    assert [n for n in Trainer.__slots__ if not hasattr(t, n)] == []
