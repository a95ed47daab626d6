"""MetricsCB: batch-size-weighted losses, torcheval and torchmetrics metrics, no per-batch reads."""
import pytest
import torch
import torchmetrics
from torch import nn
from torcheval.metrics import MulticlassAccuracy

from AIsaac.all import Accuracy, BasicTrainCB, MetricsCB, Trainer


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


def test_train_loss_is_weighted_mean_of_batch_losses(tiny_dls, tiny_model):
    mcb = MetricsCB()
    batch_losses = []

    class Spy:
        order = 1
        def after_batch(self, trainer):
            if trainer.training: batch_losses.append((trainer.loss.item(), len(trainer.batch[1])))
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, callbacks=[BasicTrainCB(), mcb, Spy()]).fit(2)
    per_epoch = [batch_losses[:6], batch_losses[6:]]
    for rec, pairs in zip(mcb.losses_epoch, per_epoch):
        assert rec["train"] == pytest.approx(sum(l * n for l, n in pairs) / sum(n for _, n in pairs), rel=1e-6)
    train_batches = [b["loss"] for b in mcb.losses_batch if b["training"]]
    assert train_batches == pytest.approx([l for l, _ in batch_losses], rel=1e-6)
    assert len(mcb.losses_batch) == 2 * (6 + 3) and set(mcb.losses_epoch[0]) == {"train", "valid"}


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
