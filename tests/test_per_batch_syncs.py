"""The default callbacks (and those of issue 20: weight averaging, MixUp/CutMix, the schedules) read nothing from the
device per batch: host reads must not grow with the number of batches.

A sync cannot be observed on a CPU, so we count the calls that would be one on a GPU (.item(), float(), .tolist(),
.cpu(), bool()) during a fit and check that 4x the batches does not add any: for (x, y) batches, for mapping batches
to a model that returns its own loss and logits, and with a value logged by `trainer.log` at every batch.
"""
import contextlib
import io

import torch
from torch import nn

import pytest

from AIsaac.all import (Accuracy, Callback, CoreCBs, CutMixCB, DataLoaders, EMACB, FitSchedulerCB, MixUpCB,
                        OneCycleSchedulerCB, ReduceLROnPlateauCB, SWACB, TensorLoader, ThroughputCB, Trainer,
                        WarmupCosineSchedulerCB, get_model_conv)


class OwnLoss(nn.Module):
    """A model called with keywords that returns a mapping with `loss` and `logits`, as Hugging Face models do."""

    def __init__(self):
        super().__init__()
        self.net = get_model_conv()

    def forward(self, pixel_values, labels):
        logits = self.net(pixel_values)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class LogCB(Callback):
    def get_loss(self, trainer): trainer.log("logit_mean", trainer.preds.mean())


class MappingLoader:
    """Batches as dicts (what a padding collator gives)."""

    def __init__(self, loader): self.loader = loader
    def __len__(self): return len(self.loader)
    def __iter__(self): return ({"pixel_values": x, "labels": y} for x, y in self.loader)

READS = ("item", "tolist", "cpu", "__float__", "__bool__", "__int__")


def count_reads(monkeypatch, n_batches: int, extra=lambda: [], kind: str = "tuple") -> int:
    calls = [0]
    for name in READS:
        orig = getattr(torch.Tensor, name)
        def counted(self, *a, _orig=orig, **k):
            calls[0] += 1
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_batches * 8, 1, 28, 28, generator=g), torch.randint(0, 10, (n_batches * 8,), generator=g)
    dls = DataLoaders(TensorLoader(x, y, batch_size=8), TensorLoader(x, y, batch_size=8))
    model, loss_func, logs = get_model_conv(), nn.CrossEntropyLoss(), []
    if kind == "mapping":
        dls, model, loss_func = DataLoaders(MappingLoader(dls.train), MappingLoader(dls.valid)), OwnLoss(), None
    if kind == "log": logs = [LogCB()]
    # SGD: Adam's own step counter is read with .item() on the CPU, which is not the callbacks' doing.
    t = Trainer(dls, loss_func, torch.optim.SGD, model, [CoreCBs("cpu", Accuracy=Accuracy()), *extra(), *logs])
    t.ProgressCB.bars = False
    with contextlib.redirect_stdout(io.StringIO()): t.fit(2, lr=0.01)
    monkeypatch.undo()
    assert ("logit_mean" in t.epoch_log) == (kind == "log") and "Accuracy" in t.epoch_log
    return calls[0]


@pytest.mark.parametrize("kind", ["tuple", "mapping", "log"])
def test_host_reads_do_not_grow_with_batches(monkeypatch, kind):
    few, many = count_reads(monkeypatch, 2, kind=kind), count_reads(monkeypatch, 8, kind=kind)
    assert many == few, f"{many - few} extra host reads for 4x the batches: a default callback reads the device per batch"


def test_loggers_add_no_host_reads_per_batch(monkeypatch, tmp_path):
    from AIsaac.all import CSVLoggerCB, LoggerCB, TensorBoardCB

    class MemoryLoggerCB(LoggerCB):  # a tracker in four lines
        rows = []
        def write_scalars(self, values, step, per): self.rows.append((per, step, values))

    extra = lambda: [TensorBoardCB(tmp_path / "tb"), CSVLoggerCB(tmp_path / "h.csv"), MemoryLoggerCB()]
    few, many = count_reads(monkeypatch, 2, extra), count_reads(monkeypatch, 8, extra)
    assert many == few, f"{many - few} extra host reads for 4x the batches: a logger reads the device per batch"
    batches = [r for r in MemoryLoggerCB.rows if r[0] == "batch"]
    assert len(batches) == 2 * 2 + 2 * 8 and set(batches[-1][2]) == {"loss/train_batch", "lr/train_batch"}


@pytest.mark.parametrize("make", [
    lambda: [EMACB(validate_with_ema=True)],
    lambda: [SWACB(per="step")],
    lambda: [MixUpCB()],
    lambda: [CutMixCB(num_classes=10)],
    lambda: [ReduceLROnPlateauCB(patience=0)],
    lambda: [WarmupCosineSchedulerCB()],
    lambda: [OneCycleSchedulerCB()],
    lambda: [FitSchedulerCB("linear", warmup=0.1)],
    lambda: [ThroughputCB(tokens=lambda batch: (batch[0] > 0).sum(), flops_per_sample=1e6, peak_flops=1e12)],
], ids=["EMACB", "SWACB", "MixUpCB", "CutMixCB", "ReduceLROnPlateauCB", "WarmupCosineSchedulerCB", "OneCycleSchedulerCB",
        "FitSchedulerCB", "ThroughputCB"])
def test_issue_20_callbacks_add_no_host_reads_per_batch(monkeypatch, make):
    few, many = count_reads(monkeypatch, 2, make), count_reads(monkeypatch, 8, make)
    assert many == few, f"{many - few} extra host reads for 4x the batches: the callback reads the device per batch"
