"""The records a fit shares (AIsaac/records.py): when `epoch_log` is final, the per-batch losses, the reduction of
`trainer.log` values and the names it refuses, each compared with the same numbers computed by hand."""
import math
import types

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (Accuracy, BasicTrainCB, CallbackError, CancelEpochException, DataLoaders, MetricsCB, Order,
                        Trainer)
from AIsaac.records import BatchLosses, Logged, epoch_log_keys, final_epoch_log, is_record_key

N_TRAIN, N_VALID, BS = 96, 40, 16  # 6 training batches; validation batches of 16, 16 and 8 rows


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_TRAIN + N_VALID, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def make(*cbs, valid=True):
    (xt, yt), (xv, yv) = data()
    dls = DataLoaders(DataLoader(TensorDataset(xt, yt), batch_size=BS),
                      DataLoader(TensorDataset(xv, yv), batch_size=BS) if valid else None)
    torch.manual_seed(0)
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(6, 3),
                   [BasicTrainCB(), MetricsCB(acc=Accuracy()), *cbs])


def hand_losses(n_steps, lr=0.1):
    """Plain PyTorch: the same model and SGD over the same batches; every training batch's loss, in order, and the
    weights after each step."""
    (xt, yt), _ = data()
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses, weights = [], []
    while len(losses) < n_steps:
        for xb, yb in DataLoader(TensorDataset(xt, yt), batch_size=BS):
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            weights.append({k: v.clone() for k, v in model.state_dict().items()})
            if len(losses) == n_steps: break
    return losses, weights


def hand_valid(state):
    _, (xv, yv) = data()
    model = nn.Linear(6, 3)
    model.load_state_dict(state)
    with torch.no_grad(): preds = model(xv)
    return nn.functional.cross_entropy(preds, yv).item(), (preds.argmax(1) == yv).float().mean().item()


class Finals:
    """At every cleanup_epoch, after MetricsCB: the phase, the step and what `final_epoch_log` says."""

    order = Order.LOGGER

    def __init__(self): self.seen = []
    def cleanup_epoch(self, trainer):
        log = final_epoch_log(trainer)
        self.seen.append((trainer.training, trainer.epoch, trainer.step, None if log is None else dict(log)))


def test_final_epoch_log_with_validation_is_the_validation_phases_record_and_matches_a_hand_loop():
    rec = Finals()
    t = make(rec)
    t.fit(2, lr=0.1)
    assert [(tr, ep, log is not None) for tr, ep, _, log in rec.seen] == [
        (True, 0, False), (False, 0, True), (True, 1, False), (False, 1, True)]
    losses, weights = hand_losses(12)
    for epoch, (_, _, step, log) in enumerate(rec.seen[1::2]):
        assert set(log) == {"epoch", "train", "valid", "acc", "lr", "train_time", "valid_time"}  # no step: epochs
        assert log["epoch"] == epoch and log["lr"] == 0.1
        assert log["train"] == pytest.approx(sum(losses[6 * epoch:6 * epoch + 6]) / 6, rel=1e-5)  # equal batches
        valid, acc = hand_valid(weights[6 * epoch + 5])
        assert log["valid"] == pytest.approx(valid, rel=1e-5) and log["acc"] == pytest.approx(acc)
    assert t.epoch_log == rec.seen[-1][3]  # nobody clears it: the last record stays after the fit


def test_final_epoch_log_without_validation_is_the_training_phases_record():
    rec = Finals()
    t = make(rec, valid=False)
    t.fit(2, lr=0.1)
    losses, _ = hand_losses(12)
    assert [(tr, ep) for tr, ep, _, log in rec.seen if log is not None] == [(True, 0), (True, 1)]
    for epoch, (_, _, _, log) in enumerate(rec.seen):
        assert set(log) == {"epoch", "train", "lr", "train_time"}
        assert log["train"] == pytest.approx(sum(losses[6 * epoch:6 * epoch + 6]) / 6, rel=1e-5)


def test_with_valid_every_each_validation_is_a_record_keyed_by_step():
    rec = Finals()
    t = make(rec)
    t.fit(max_steps=9, valid_every=4, lr=0.1)  # 6 batches an epoch: validations at steps 4, 8 and 9 (the end)
    records = [log for *_, log in rec.seen if log is not None]
    assert [(r["epoch"], r["step"]) for r in records] == [(0, 4), (1, 8), (1, 9)]
    assert all(not tr for tr, *_, log in rec.seen if log is not None)  # only validations close a record
    losses, weights = hand_losses(9)
    # A record's training loss covers the steps since the last validation, across the epoch boundary.
    for r, (lo, hi) in zip(records, [(0, 4), (4, 8), (8, 9)]):
        assert r["train"] == pytest.approx(sum(losses[lo:hi]) / (hi - lo), rel=1e-5)
        assert r["valid"] == pytest.approx(hand_valid(weights[hi - 1])[0], rel=1e-5)
    assert t.step == 9 and t.epoch_log == records[-1]


def test_an_epoch_fit_validated_every_k_steps_also_validates_at_its_end():
    rec = Finals()
    t = make(rec)
    t.fit(1, valid_every=4, lr=0.1)  # 6 steps: a validation at step 4, and one at the end for steps 5 and 6
    records = [log for *_, log in rec.seen if log is not None]
    assert [(r["epoch"], r["step"]) for r in records] == [(0, 4), (0, 6)]
    losses, _ = hand_losses(6)
    assert records[-1]["train"] == pytest.approx(sum(losses[4:6]) / 2, rel=1e-5)
    assert t.epoch_log == records[-1]


class CancelValidation:
    def before_epoch(self, trainer):
        if not trainer.training and trainer.epoch == 1: raise CancelEpochException()


def test_a_cancelled_validation_leaves_its_record_without_a_final_log():
    rec = Finals()
    make(CancelValidation(), rec).fit(3, lr=0.1)
    assert [log["epoch"] for *_, log in rec.seen if log is not None] == [0, 2]


@pytest.mark.parametrize("key, record", [("lr", True), ("lr_1", True), ("mom", True), ("mom_0", True),
                                         ("train_time", True), ("valid_time", True), ("epoch", False),
                                         ("train", False), ("valid", False), ("acc", False), ("lr_min", False),
                                         ("train_acc", False)])
def test_is_record_key(key, record):
    assert is_record_key(key) is record


def test_epoch_log_keys_are_the_ones_the_fit_will_produce():
    t = make()
    t.run_train, t.run_valid = True, True
    assert epoch_log_keys(t) == {"epoch", "train", "valid", "acc"}
    t.run_valid = False
    assert epoch_log_keys(t) == {"epoch", "train"}
    t.remove_callbacks(t.MetricsCB)
    assert epoch_log_keys(t) is None  # nobody fills the epoch log


def test_batch_losses_are_every_batchs_loss_as_a_hand_loop_computes_them():
    t = make()
    t.fit(2, lr=0.1)
    assert t.batch_losses is t.MetricsCB.losses_batch and len(t.batch_losses) == 2 * (6 + 3)
    train = [r["loss"] for r in t.batch_losses if r["training"]]
    assert train == pytest.approx(hand_losses(12)[0], rel=1e-5)
    assert [r["training"] for r in t.batch_losses] == ([True] * 6 + [False] * 3) * 2


def test_batch_losses_is_a_list_of_records():
    b = BatchLosses([{"training": True, "loss": 1.5}])
    b.add(False, [0.25, 0.5])
    b.append({"training": 1, "loss": 2})
    assert len(b) == 4 and b[1] == {"training": False, "loss": 0.25} and b[-1] == {"training": True, "loss": 2.0}
    assert b[1:3] == [{"training": False, "loss": 0.25}, {"training": False, "loss": 0.5}]
    assert b == [{"training": True, "loss": 1.5}, *b[1:]] and repr(b) == "BatchLosses(4 batches)"
    b.clear()
    assert len(b) == 0 and b == []


def one_process(): return types.SimpleNamespace(num_processes=1)


def test_logged_read_is_the_weighted_mean_of_each_name():
    logged = Logged()
    values = [(torch.tensor(2.0), 16), (torch.tensor(5.0), 16), (torch.tensor(-1.0), 8)]
    for v, w in values: logged.add("x", v, w)
    logged.add("n", 3, 4)  # a Python number, on no device
    logged.add("n", 1.5, 12)
    assert logged.names() == ["x", "n"] and "x" in logged and len(logged) == 2 and list(logged["n"]) == [3, 1.5]
    means = logged.read(one_process(), prefix="train_")
    assert means == pytest.approx({"train_x": (2 * 16 + 5 * 16 - 8) / 40, "train_n": (3 * 4 + 1.5 * 12) / 16})
    assert Logged().read(one_process()) == {} and not Logged()
    zero = Logged()
    zero.add("z", 1.0, 0)
    assert math.isnan(zero.read(one_process())["z"])


class LogsMean:
    """Logs the mean of the first input column in every batch, and a constant in training."""

    def after_batch(self, trainer):
        trainer.log("x0", trainer.xb[0][:, 0].mean())
        if trainer.training: trainer.log("half", 0.5)


def test_logged_values_in_a_fit_are_weighted_by_batch_size_as_the_mean_over_all_rows():
    t = make(LogsMean())
    t.fit(1, lr=0.1)
    (xt, _), (xv, _) = data()
    # Batches of 16, 16 and 8: the mean of the batch means weighted by their sizes is the mean over all rows.
    assert t.epoch_log["x0"] == pytest.approx(xv[:, 0].mean().item(), rel=1e-5)
    assert t.epoch_log["train_x0"] == pytest.approx(xt[:, 0].mean().item(), rel=1e-5)
    assert t.epoch_log["train_half"] == 0.5 and "half" not in t.epoch_log


class LogsAs:
    def __init__(self, name, training): self.name, self.training = name, training

    def after_batch(self, trainer):
        if trainer.training == self.training: trainer.log(self.name, 1.0)


@pytest.mark.parametrize("name, training, key", [("valid", False, "valid"), ("valid", True, "train_valid"),
                                                 ("acc", False, "acc"), ("acc", True, "train_acc"),
                                                 ("lr", True, "train_lr"), ("lr_0", False, "lr_0"),
                                                 ("epoch", False, "epoch"), ("step", True, "train_step")])
def test_trainer_log_refuses_a_loss_a_metric_or_a_record_of_the_run(name, training, key):
    t = make(LogsAs(name, training))
    with pytest.raises(CallbackError, match=rf"trainer.log\('{name}', \.\.\.\) would replace '{key}' in the epoch log, "
                                            rf"which is a loss, a metric or a record of the run; log the value under "
                                            rf"another name \(e.g. '{name}_logged'\)") as e:
        t.fit(1, lr=0.1)
    assert isinstance(e.value, ValueError) and "LogsAs" in str(e.value) and "after_batch" in str(e.value)
    t = make(LogsAs(f"{name}_logged", training))
    t.fit(1, lr=0.1)  # the name the message suggests
    assert t.epoch_log[f"{'train_' * training}{name}_logged"] == 1.0
