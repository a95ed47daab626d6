"""`profile` (AIsaac/tools/profiling.py, `Trainer.profile`): a fit under ProfileCB that returns it, with every callback
in its table, before_fit timed too, and the trainer as it was afterwards, even when the fit never starts."""
import contextlib
import io

import pytest
import torch

from AIsaac.all import ProfileCB
from AIsaac.tools.profiling import profile


from tests.helpers.small_fit import ReadsLoss
from tests.helpers.small_fit import profiled_trainer as trainer


def test_profile_has_a_row_per_callback_and_event_with_the_right_counts():
    t = trainer(ReadsLoss())
    with contextlib.redirect_stdout(io.StringIO()) as out: prof = t.profile(2, lr=0.1, count_cpu=True)
    rec = {k: v for k, v in prof.records.items()}
    train, valid, epochs = 5, 2, 2
    assert rec[("BasicTrainCB", "predict")][0] == epochs * (train + valid)
    assert rec[("BasicTrainCB", "step")][0] == rec[("BasicTrainCB", "backward")][0] == epochs * train
    assert rec[("DeviceCB", "before_fit")][0] == 1  # trainer.profile times before_fit too
    assert rec[("MetricsCB", "cleanup_epoch")][0] == epochs * 2
    assert rec[("ReadsLoss", "after_batch")][2] == epochs * (train + valid)  # one host read per batch
    assert rec[("BasicTrainCB", "predict")][2] == 0
    assert all(s >= 0 for _, s, _ in rec.values()) and prof.seconds > 0
    assert all(r[3] >= 0 for r in prof.rows()[:-1])
    text = out.getvalue()
    assert "ReadsLoss" in text and "after_batch" in text and "syncs" in text
    assert "ProfileCB" not in t.named_callbacks and all(not hasattr(m, "record") for ms in t.plan.values() for m in ms)


def test_the_returned_profile_cb_tables_each_callback_once_the_fit_is_done():
    t = trainer(ReadsLoss())
    prof = profile(t, 1, lr=0.1, show=False)
    assert isinstance(prof, ProfileCB) and t.cbs == [cb for cb in t.cbs if not isinstance(cb, ProfileCB)]
    table = prof.table()
    lines = table.splitlines()
    assert lines[0].split() == ["callback", "event", "calls", "total", "ms", "mean", "us", "syncs"]
    named = {line.split()[0] for line in lines[2:-1]}
    assert {"BasicTrainCB", "DeviceCB", "MetricsCB", "ReadsLoss"} <= named and "ProfileCB" not in named
    assert lines[-1].startswith("fit: ") and lines[-1].endswith(" ms")
    # The rows' times add up to the fit's: the last row is the time outside the callbacks.
    assert sum(r[3] for r in prof.rows()) == pytest.approx(prof.seconds * 1e3)


def test_fit_arguments_go_to_the_fit():
    t = trainer()
    prof = t.profile(1, lr=0.5, show=False, valid=False, max_steps=3)
    assert prof.records[("BasicTrainCB", "predict")][0] == 3 and t.step == 3  # 3 steps, no validation
    assert t.opt.param_groups[0]["lr"] == 0.5


def test_a_fit_refused_before_it_starts_leaves_no_profiler_behind():
    t = trainer()
    plan = dict(t.plan)
    item = torch.Tensor.__dict__.get("item")
    with pytest.raises(ValueError, match="lr must be a number > 0"): t.profile(1, lr=-1.0, show=False)
    assert "ProfileCB" not in t.named_callbacks and dict(t.plan) == plan  # the plan runs the callbacks' own methods
    assert torch.Tensor.__dict__.get("item") is item  # the host-read counter is undone
