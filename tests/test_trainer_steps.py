"""Step budgets (`fit(max_steps=)`), step-based validation (`fit(valid_every=)`), and loaders without a length."""
import csv

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from AIsaac.all import (Accuracy, BasicTrainCB, CheckpointCB, CSVLoggerCB, DataLoaders, EarlyStoppingCB, GradAccumCB,
                        MetricsCB, ProgressCB, Trainer, set_seed)


def make_data(n=84 * 16, bs=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 10, generator=g)
    y = (x[:, 0] > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=bs)  # no shuffle: a hand loop sees the same batches
    valid = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=64)
    return DataLoaders(train, valid), train


def make_model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))


def hand_loop(model, train, steps, lr, accumulate=1):
    opt = torch.optim.SGD(model.parameters(), lr)
    done, n = 0, 0
    while done < steps:
        for x, y in train:
            (nn.functional.cross_entropy(model(x), y) / accumulate).backward()
            n += 1
            if n % accumulate == 0:
                opt.step()
                opt.zero_grad()
                done += 1
                if done == steps: break
    return model


def test_300_steps_validated_every_100_gives_3_rows_keyed_by_step_and_hand_loop_weights(tmp_path, capsys):
    dls, train = make_data()
    seen = []

    class Validations:
        order = 20

        def before_epoch(self, trainer):
            if not trainer.training: seen.append(trainer.step)

    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, make_model(),
                [BasicTrainCB(), MetricsCB(acc=Accuracy()), ProgressCB(), CSVLoggerCB(tmp_path / "log.csv"), Validations()])
    t.fit(max_steps=300, valid_every=100, lr=0.1)
    out = capsys.readouterr().out
    assert t.step == 300 and seen == [100, 200, 300]  # 3 validations, not one per epoch (84 batches an epoch)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == [100, 200, 300] and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert out.splitlines()[0].split()[:3] == ["epoch", "step", "train"] and len(out.splitlines()) == 4
    assert len(t.MetricsCB.losses_epoch) == 3
    # The train loss of a record is the mean over every training batch since the previous validation.
    losses = [r["loss"] for r in t.batch_losses if r["training"]]
    assert len(losses) == 300
    assert float(rows[1]["train"]) == pytest.approx(sum(losses[100:200]) / 100, rel=1e-6)
    expected = hand_loop(make_model(), train, 300, 0.1)
    for p, q in zip(t.model.parameters(), expected.parameters()): assert torch.equal(p, q)


def test_max_steps_ends_mid_epoch_validates_once_and_counts_real_steps_with_accumulation():
    dls, train = make_data()
    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, make_model(), [BasicTrainCB(), MetricsCB(), GradAccumCB(2)])
    t.fit(max_steps=50, lr=0.1)  # 100 batches: more than one epoch of 84
    # Epoch 0 ends with its validation; epoch 1 is cut short at the budget, and validated there: its row is kept.
    assert t.step == 50 and t.epoch == 1 and len(t.MetricsCB.losses_epoch) == 2
    assert t.epoch_log["step"] == 50 and "valid" in t.epoch_log
    expected = hand_loop(make_model(), train, 50, 0.1, accumulate=2)
    for p, q in zip(t.model.parameters(), expected.parameters()): assert torch.allclose(p, q, atol=1e-6)
    t.fit(max_steps=10, valid=False)
    assert t.step == 10 and len(t.MetricsCB.losses_epoch) == 3 and "valid" not in t.epoch_log


def test_epoch_fits_are_unchanged_by_the_step_machinery():
    dls, _ = make_data()
    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, make_model(), [BasicTrainCB(), MetricsCB()])
    t.fit(2, lr=0.1)
    assert t.step == 168 and list(t.epoch_log)[:4] == ["epoch", "train", "valid", "train_time"]
    assert [r.keys() for r in t.MetricsCB.losses_epoch] == [{"train", "valid"}] * 2


def test_n_epochs_and_max_steps_together_the_first_bound_wins():
    dls, _ = make_data()
    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, make_model(), [BasicTrainCB(), MetricsCB()])
    t.fit(1, max_steps=1000, lr=0.1)
    assert t.step == 84
    with pytest.raises(ValueError, match="max_steps"): t.fit(max_steps=0)
    with pytest.raises(ValueError, match="valid_every"): t.fit(1, valid_every=-3)


def test_early_stopping_sees_one_record_per_validation():
    dls, _ = make_data()
    t = Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, make_model(),
                [BasicTrainCB(), MetricsCB(), EarlyStoppingCB(monitor="valid", patience=1, min_delta=10.0)])
    t.fit(max_steps=500, valid_every=20, lr=0.1)
    assert t.step == 40 and len(t.MetricsCB.losses_epoch) == 2  # stopped at the second validation, mid-epoch


class Stream(IterableDataset):
    """A stream of unknown length: the same examples in the same order on every pass."""

    def __init__(self, n=None):
        self.n = n

    def __iter__(self):
        g = torch.Generator().manual_seed(3)
        i = 0
        while self.n is None or i < self.n:
            x = torch.randn(10, generator=g)
            yield x, (x[0] > 0).long()
            i += 1


def stream_trainer(cbs, n=None):
    dls = DataLoaders(DataLoader(Stream(n), batch_size=8), DataLoader(Stream(64), batch_size=32))
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.SGD, make_model(), [BasicTrainCB(), MetricsCB(), *cbs])


def test_a_stream_of_unknown_length_trains_with_progress_and_lr_find(capsys):
    t = stream_trainer([ProgressCB(bars=True)])
    t.fit(max_steps=30, valid_every=10, lr=0.1)
    err = capsys.readouterr().err
    assert t.step == 30 and len(t.MetricsCB.losses_epoch) == 3
    assert "it/s" in err or "s/it" in err  # the bar counts batches without a total and shows their rate
    found = t.lr_find(num_it=20, show_plot=False)
    assert 1e-7 < found.lr_steep < 10 and len(found.lrs) <= 20
    t2 = stream_trainer([], n=40)  # a finite stream: epochs end where it does
    t2.fit(2, lr=0.1)
    assert t2.step == 10 and t2.epoch == 1


def test_a_stream_killed_mid_epoch_resumes_bit_identical(tmp_path):
    set_seed(0)
    full = stream_trainer([])
    full.fit(max_steps=40, valid_every=15, lr=0.1)

    class Interrupt:
        def after_batch(self, trainer):
            if trainer.training and trainer.step == 23: raise KeyboardInterrupt

    set_seed(0)
    cut = stream_trainer([CheckpointCB(tmp_path, every_n_batches=5), Interrupt()])
    with pytest.raises(KeyboardInterrupt): cut.fit(max_steps=40, valid_every=15, lr=0.1)
    resumed = stream_trainer([CheckpointCB(tmp_path, every_n_batches=5)])
    resumed.fit(max_steps=40, valid_every=15, lr=0.1, resume_from=tmp_path, allow_changes=("callbacks",))
    assert resumed.step == 40
    for p, q in zip(full.model.parameters(), resumed.model.parameters()): assert torch.equal(p, q)
    assert resumed.MetricsCB.losses_epoch == full.MetricsCB.losses_epoch
