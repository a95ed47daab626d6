import contextlib
import io

import torch
from torch import nn

from AIsaac.all import (BasicTrainCB, CallbackError, DataLoaders, DeviceCB, MetricsCB, ProfileCB, TensorLoader,
                        Trainer)


def trainer(*extra):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    dls = DataLoaders(TensorLoader(x, y, batch_size=8), TensorLoader(x[:16], y[:16], batch_size=8))  # 5 and 2 batches
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 3),
                   [BasicTrainCB(), DeviceCB("cpu"), MetricsCB(), *extra])


class ReadsLoss:
    def after_batch(self, trainer): trainer.loss.item()


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


def test_cpu_reads_are_not_counted_by_default_and_the_patch_is_undone():
    before = {n: torch.Tensor.__dict__.get(n) for n in ("item", "__float__", "__bool__")}
    t = trainer(ReadsLoss())
    prof = t.profile(1, lr=0.1, show=False)
    assert prof.records[("ReadsLoss", "after_batch")][2] == 0
    assert {n: torch.Tensor.__dict__.get(n) for n in before} == before


def test_profilecb_in_fit_and_errors_still_name_the_callback():
    class Boom:
        def after_batch(self, trainer): raise RuntimeError("boom")
    t = trainer(Boom())
    cb = ProfileCB(show=False)
    try: t.fit(1, lr=0.1, callbacks=[cb])
    except CallbackError as e: assert "Boom" in str(e) and "after_batch" in str(e)
    else: raise AssertionError("the error was swallowed")
    assert cb.records[("Boom", "after_batch")][0] == 1
    assert torch.Tensor.__dict__.get("item") is None or "counted" not in torch.Tensor.item.__name__
