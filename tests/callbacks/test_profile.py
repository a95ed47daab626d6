"""ProfileCB (AIsaac/callbacks/profile.py): host reads counted only on accelerators unless asked, the patch undone,
and errors in a profiled fit still naming the callback; Trainer.profile is tested in tests/tools/test_profiling.py."""
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
