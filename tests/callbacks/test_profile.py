"""ProfileCB (AIsaac/callbacks/profile.py): host reads counted only on accelerators unless asked, the patch undone,
and errors in a profiled fit still naming the callback; Trainer.profile is tested in tests/tools/test_profiling.py."""
import torch

from AIsaac.all import (CallbackError, ProfileCB)


from tests.helpers.small_fit import ReadsLoss
from tests.helpers.small_fit import profiled_trainer as trainer


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
