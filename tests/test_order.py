"""`Order` (AIsaac/order.py): callbacks placed by the named order values run in that order, at every event of a real
fit, among the built-in callbacks that use the same values."""
import random

import torch
from torch import nn

from AIsaac.all import (AccelerateCB, BasicTrainCB, CheckpointCB, CSVLoggerCB, DeviceCB, EarlyStoppingCB, MetricsCB,
                        MixedPrecisionCB, Order, ProfileCB, ProgressCB, TerminateOnNaNCB, Trainer)
from AIsaac.records import final_epoch_log

NAMES = ("FIRST", "LAUNCH", "DEVICE", "STEP_WRAPPER", "GUARD", "DEFAULT", "METRICS", "LOGGER", "DISPLAY", "LAST", "FINAL")


def test_the_named_values_increase_from_first_to_final():
    values = [getattr(Order, n) for n in NAMES]
    assert values == sorted(values) and Order.DEFAULT == Order.METRICS == 0
    assert len(set(values)) == len(values) - 1  # DEFAULT and METRICS are the one tie


def test_the_built_in_callbacks_stand_where_their_names_say(tmp_path):
    assert [cb.order for cb in (ProfileCB(), AccelerateCB(), DeviceCB("cpu"), MixedPrecisionCB(), TerminateOnNaNCB(),
                                BasicTrainCB(), MetricsCB(), CSVLoggerCB(tmp_path / "log.csv"), EarlyStoppingCB(),
                                ProgressCB(), CheckpointCB(tmp_path))] == [
        Order.FIRST, Order.LAUNCH, Order.DEVICE, Order.STEP_WRAPPER, Order.GUARD, Order.DEFAULT, Order.METRICS,
        Order.LOGGER, Order.LOGGER, Order.DISPLAY, Order.LAST]


class Placed:
    """A callback at `Order.<name>` that writes its name in `trace` at each event it has."""

    def __init__(self, name, trace):
        self.name, self.trace, self.order = name, trace, getattr(Order, name)
        for ev in ("before_fit", "before_epoch", "before_batch", "after_batch", "cleanup_epoch", "cleanup_fit"):
            setattr(self, ev, self._record(ev))

    def _record(self, ev):
        def method(trainer): self.trace.append((ev, self.name))
        return method


def test_callbacks_run_in_order_of_their_named_values_at_every_event(tiny_dls, tiny_model):
    trace = []
    placed = [Placed(n, trace) for n in NAMES if n != "METRICS"]  # METRICS is DEFAULT's number
    random.Random(0).shuffle(placed)  # added in any order
    t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB()])
    t.add_callbacks(placed, force=True)  # one class, so Placed, Placed_2, ...
    t.fit(1, lr=0.1)
    order = [n for n in NAMES if n != "METRICS"]
    n_batches = len(tiny_dls.train) + len(tiny_dls.valid)
    for ev, times in [("before_fit", 1), ("before_epoch", 2), ("before_batch", n_batches), ("after_batch", n_batches),
                      ("cleanup_epoch", 2), ("cleanup_fit", 1)]:
        assert [n for e, n in trace if e == ev] == order * times, ev


class ReadsLog:
    """Records, at each cleanup_epoch, whether the epoch's record was final when it ran."""

    def __init__(self, order): self.order, self.seen = order, []
    def cleanup_epoch(self, trainer): self.seen.append(final_epoch_log(trainer) is not None)


def test_a_logger_after_metrics_reads_the_final_record_and_one_before_it_does_not(tiny_dls, tiny_model):
    # Why the values are named: the record exists only for callbacks ordered after MetricsCB's cleanup_epoch.
    after, before = ReadsLog(Order.LOGGER), ReadsLog(Order.GUARD)
    t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [after, BasicTrainCB(), MetricsCB()])
    t.add_callbacks(before, force=True)  # added last, run first
    t.fit(2, lr=0.1)
    assert after.seen == [False, True, False, True]  # training phase: not final yet; validation: final
    assert before.seen == [False] * 4
