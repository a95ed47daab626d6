"""The default callbacks read nothing from the device per batch: host reads must not grow with the number of batches.

A sync cannot be observed on a CPU, so we count the calls that would be one on a GPU (.item(), float(), .tolist(),
.cpu(), bool()) during a fit and check that 4x the batches does not add any.
"""
import contextlib
import io

import torch
from torch import nn

from AIsaac.all import Accuracy, CoreCBs, DataLoaders, TensorLoader, Trainer, get_model_conv

READS = ("item", "tolist", "cpu", "__float__", "__bool__", "__int__")


def count_reads(monkeypatch, n_batches: int, extra=lambda: []) -> int:
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
    # SGD: Adam's own step counter is read with .item() on the CPU, which is not the callbacks' doing.
    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, get_model_conv(), [CoreCBs("cpu", Accuracy=Accuracy()), *extra()])
    t.ProgressCB.bars = False
    with contextlib.redirect_stdout(io.StringIO()): t.fit(2, lr=0.01)
    monkeypatch.undo()
    return calls[0]


def test_host_reads_do_not_grow_with_batches(monkeypatch):
    few, many = count_reads(monkeypatch, 2), count_reads(monkeypatch, 8)
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
