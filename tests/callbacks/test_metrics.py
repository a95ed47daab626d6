"""MetricsCB: batch-size-weighted losses and per-batch records against a loop by hand, torcheval and torchmetrics
metrics, the records of the run in epoch_log (lr, momentum, phase times), no per-batch reads."""
import time
from functools import partial

import pytest
import torch
import torchmetrics
from torch import nn
from torcheval.metrics import MulticlassAccuracy

from AIsaac.all import Accuracy, BasicTrainCB, DataLoaders, MetricsCB, TensorLoader, Trainer, is_record_key
from AIsaac.records import BatchLosses


def test_epoch_losses_and_metrics_equal_hand_computation(tiny_dls, tiny_model):
    mcb = MetricsCB(te=MulticlassAccuracy(), tm=torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro"),
                    own=Accuracy())
    tr = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, callbacks=[BasicTrainCB(), mcb])
    tr.fit(1, train=False)  # weights fixed, so the hand computation sees the same model
    xv, yv = tiny_dls.valid.dataset.tensors
    with torch.no_grad(): logits = tiny_model(xv)
    loss = nn.functional.cross_entropy(logits, yv).item()  # batches of 16, 16, 8: weighted mean = full mean
    acc = (logits.argmax(1) == yv).float().mean().item()
    assert mcb.losses_epoch == [{"valid": pytest.approx(loss, rel=1e-6)}]
    assert mcb.metrics_epoch == [{"te": pytest.approx(acc), "tm": pytest.approx(acc), "own": pytest.approx(acc)}]
    assert [b["training"] for b in mcb.losses_batch] == [False] * 3
    assert tr.epoch_log == {"epoch": 0, "valid": pytest.approx(loss, rel=1e-6), "te": pytest.approx(acc),
                            "tm": pytest.approx(acc), "own": pytest.approx(acc),
                            "valid_time": tr.epoch_log["valid_time"]}  # a validation-only fit: no lr, one phase time
    assert 0 < tr.epoch_log["valid_time"] < 10


def fit(n=70, bs=16, epochs=2):
    """Two epochs on 70 training rows (batches of 16, 16, 16, 16, 6) and 30 validation rows (16, 14)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    torch.manual_seed(0)
    t = Trainer(DataLoaders(TensorLoader(x, y, batch_size=bs), TensorLoader(x[:30], y[:30], batch_size=bs)),
                nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(5, 3), [BasicTrainCB(), MetricsCB(Accuracy())])
    t.fit(epochs, lr=0.1)
    return t, x, y


def test_batch_records_and_batch_size_weighted_epoch_losses_equal_a_loop_by_hand():
    t, x, y = fit()
    torch.manual_seed(0)
    model, lf = nn.Linear(5, 3), nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    want, epochs = [], []  # want: (training, loss, rows) per batch, in order
    for _ in range(2):
        start = len(want)
        for xb, yb in zip(x.split(16), y.split(16)):
            loss = lf(model(xb), yb)
            want.append((True, loss.item(), len(xb)))
            loss.backward(); opt.step(); opt.zero_grad()
        with torch.no_grad():
            want += [(False, lf(model(xb), yb).item(), len(xb)) for xb, yb in zip(x[:30].split(16), y[:30].split(16))]
        mean = lambda training: (sum(l * n for tr, l, n in want[start:] if tr == training) /
                                 sum(n for tr, _, n in want[start:] if tr == training))
        epochs.append({"train": mean(True), "valid": mean(False)})  # 70 = 4 x 16 + 6 rows; 30 = 16 + 14
    got = t.MetricsCB.losses_batch
    assert [r["training"] for r in got] == [tr for tr, _, _ in want] == ([True] * 5 + [False] * 2) * 2
    torch.testing.assert_close([r["loss"] for r in got], [l for _, l, _ in want])
    assert [set(e) for e in t.MetricsCB.losses_epoch] == [{"train", "valid"}] * 2
    for got_epoch, want_epoch in zip(t.MetricsCB.losses_epoch, epochs):
        assert got_epoch == pytest.approx(want_epoch, rel=1e-6)
    assert t.epoch_log["train"] == pytest.approx(epochs[1]["train"], rel=1e-6)  # the last epoch, in epoch_log
    # Not the plain mean of the batch losses: the short batches weigh less.
    assert epochs[0]["train"] != pytest.approx(sum(l for tr, l, _ in want[:7] if tr) / 5, rel=1e-6)


def test_metrics_are_reset_between_epochs_and_fits(tiny_dls, tiny_model):
    mcb = MetricsCB(acc=Accuracy())
    tr = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, callbacks=[BasicTrainCB(), mcb])
    tr.fit(2, train=False)
    tr.fit(1, train=False)
    accs = [m["acc"] for m in mcb.metrics_epoch]
    assert len(accs) == 3 and accs[0] == accs[1] == accs[2]  # nothing carried over


def test_positional_metrics_are_named_by_class():
    assert list(MetricsCB(Accuracy()).metrics) == ["Accuracy"]


def test_metric_without_update_compute_reset_is_refused():
    with pytest.raises(TypeError, match="metric 'f1'.*needs update, compute and reset"):
        MetricsCB(f1=lambda p, t: 0)


def test_no_host_reads_per_batch(tiny_dls, tiny_model, monkeypatch):
    """Reading a device value on the host (item/float/tolist) happens per epoch, never per batch."""
    counts = {"n": 0}
    for name in ("item", "__float__", "tolist"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, (lambda real: lambda self, *a: counts.__setitem__("n", counts["n"] + 1) or real(self, *a))(real))

    def reads(n_epochs):
        counts["n"] = 0
        Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model,
                callbacks=[BasicTrainCB(), MetricsCB(acc=Accuracy())]).fit(n_epochs)
        return counts["n"]
    one, three = reads(1), reads(3)
    assert three == 3 * one and one < 9  # a handful per epoch (losses, metrics), fewer than its 9 batches


def test_batch_losses_is_a_list_of_dicts():
    b = BatchLosses([{'training': True, 'loss': 1.5}])
    b.add(False, [2.0, 3.0])
    assert len(b) == 3 and b[0] == {'training': True, 'loss': 1.5} and b[-1] == {'training': False, 'loss': 3.0}
    assert b[1:] == [{'training': False, 'loss': 2.0}, {'training': False, 'loss': 3.0}]
    assert b == list(b) and all(isinstance(r, dict) and 'loss' in r for r in b[:3])


def test_epoch_log_records_lr_per_group_momentum_and_phase_times():
    def two_groups(params, lr):  # the head trains 10x faster
        params = list(params)
        return torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": lr * 10}], lr=lr, momentum=0.9)

    class Slow:  # each training batch takes 20 ms of wall time
        def after_batch(self, trainer):
            if trainer.training: time.sleep(0.02)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    dls = DataLoaders(TensorLoader(x, y, batch_size=16), TensorLoader(x[:16], y[:16], batch_size=16))
    t = Trainer(dls, nn.CrossEntropyLoss(), two_groups, nn.Linear(5, 3), [BasicTrainCB(), MetricsCB(), Slow()])
    t.fit(1, lr=0.01)
    log = t.epoch_log
    assert (log["lr_0"], log["lr_1"], log["mom_0"], log["mom_1"]) == (0.01, 0.1, 0.9, 0.9)
    assert 4 * 0.02 <= log["train_time"] < 4 * 0.02 + 2 and 0 < log["valid_time"] < log["train_time"]
    assert [k for k in log if not is_record_key(k)] == ["epoch", "train", "valid"]
    t = Trainer(dls, nn.CrossEntropyLoss(), partial(torch.optim.Adam, betas=(0.8, 0.99)), nn.Linear(5, 3),
                [BasicTrainCB(), MetricsCB()])
    t.fit(1, lr=0.003, valid=False)
    assert (t.epoch_log["lr"], t.epoch_log["mom"]) == (0.003, 0.8) and "valid_time" not in t.epoch_log
    t.fit(1, lr=0.003, train=False)  # validation only: no optimizer records
    assert set(t.epoch_log) == {"epoch", "valid", "valid_time"}


def test_a_vector_metric_becomes_one_column_per_entry_matching_a_hand_computation():
    from AIsaac.all import BasicTrainCB, DataLoaders, Trainer

    class PerClassRecall:
        """Recall of each class (a vector, like torchmetrics' average=None)."""
        def __init__(self): self.reset()
        def reset(self): self.hit, self.n = torch.zeros(3), torch.zeros(3)
        def update(self, preds, y):
            p = preds.argmax(-1)
            for c in range(3):
                self.hit[c] += ((p == c) & (y == c)).sum()
                self.n[c] += (y == c).sum()
        def compute(self): return self.hit / self.n

    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = x[:, :3].argmax(1)
    dls = DataLoaders.from_tensors((x[:64], y[:64]), (x[64:], y[64:]), batch_size=16)
    torch.manual_seed(0)
    t = Trainer(dls, torch.nn.CrossEntropyLoss(), torch.optim.SGD, torch.nn.Linear(4, 3),
                [BasicTrainCB(), MetricsCB(recall=PerClassRecall())])
    t.fit(1, lr=0.1)
    p = t.model(x[64:]).argmax(-1)
    for c in range(3):
        expected = ((p == c) & (y[64:] == c)).sum().item() / (y[64:] == c).sum().item()
        assert t.epoch_log[f"recall_{c}"] == pytest.approx(expected)
    assert "recall" not in t.epoch_log
