"""ThroughputCB's counts equal a hand count over the same loader (samples, tokens, summed over processes once per
phase); its rates are those counts over its time, in epoch_log, the table and the CSV; it leaves training unchanged."""
import csv

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (BasicTrainCB, CallbackSetupError, CSVLoggerCB, DataLoaders, MetricsCB, Order, ProgressCB,
                        ThroughputCB, Trainer, final_epoch_log)


def data(n_train=84, bs=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + 20, 6, generator=g)
    x[x.abs() < 0.5] = 0  # "padding": the tokens are the nonzero entries
    y = (x[:, 0] > 0).long()
    return DataLoaders(DataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=bs),
                       DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=bs))


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))


def tokens(batch): return (batch[0] != 0).sum()  # a tensor: summed on the device


class Records:
    '''Each final record's epoch_log and ThroughputCB's totals behind it'''

    order = Order.LOGGER

    def __init__(self, cb): self.cb, self.rows = cb, []
    def before_fit(self, trainer): self.rows = []

    def cleanup_epoch(self, trainer):
        if (log := final_epoch_log(trainer)) is not None:
            self.rows.append((dict(log), self.cb.samples, self.cb.n_tokens, self.cb.seconds))


def fit(cbs, n_epochs=2, **kw):
    t = Trainer(data(), nn.CrossEntropyLoss(), torch.optim.SGD, model(), [BasicTrainCB(), MetricsCB(), *cbs])
    t.fit(n_epochs, lr=0.1, **kw)
    return t


def test_counts_equal_a_hand_count_and_rates_are_counts_over_time():
    cb = ThroughputCB(tokens=tokens, flops_per_sample=1e4, peak_flops=1e9)
    rec = Records(cb)
    t = fit([cb, rec], n_epochs=3)
    x = data().train.dataset.tensors[0]
    assert len(rec.rows) == 3
    for log, samples, n_tokens, seconds in rec.rows:
        assert samples == 84 and n_tokens == int((x != 0).sum()) and isinstance(n_tokens, int)
        assert 0 < seconds < log["train_time"] + log["valid_time"]
        assert log["samples_per_s"] == samples / seconds and log["tokens_per_s"] == n_tokens / seconds
        assert log["mfu"] == pytest.approx(1e4 * log["samples_per_s"] / 1e9, rel=1e-12)
    assert {"samples_per_s", "tokens_per_s", "mfu"} <= set(t.epoch_log)


def test_training_is_unchanged():
    with_cb, without = fit([ThroughputCB(tokens=tokens)]), fit([])
    for p, q in zip(with_cb.model.parameters(), without.model.parameters()): assert torch.equal(p, q)


def test_valid_every_records_count_their_own_steps():
    cb = ThroughputCB()
    rec = Records(cb)
    fit([cb, rec], n_epochs=None, max_steps=14, valid_every=5)  # 11 batches an epoch: records at 5, 10, 14 steps
    assert [r[1] for r in rec.rows] == [5 * 8, 5 * 8, 8 + 4 + 2 * 8]  # the epoch's last batch holds 4 samples


def test_summed_over_processes_once_per_training_phase():
    cb = ThroughputCB(tokens=tokens, flops_per_sample=1e4, peak_flops=1e9)
    rec, reduced = Records(cb), []

    class TwoProcesses:  # the trainer state AccelerateCB sets: every process counted the same
        order = Order.LAUNCH
        def before_fit(self, trainer):
            trainer.num_processes = 2
            trainer.reduce_sum = lambda t: reduced.append(t) or t * 2
            trainer.gather_object = lambda obj: [obj, obj]

    fit([TwoProcesses(), cb, rec])
    x = data().train.dataset.tensors[0]
    ours = [t for t in reduced if t.dtype == torch.int64]  # MetricsCB reduces its float loss sums
    assert len(ours) == 2 and all(t.shape == (2,) for t in ours)  # one [samples, tokens] per training phase
    for log, samples, n_tokens, seconds in rec.rows:
        assert samples == 2 * 84 and n_tokens == 2 * int((x != 0).sum())
        assert log["mfu"] == pytest.approx(1e4 * log["samples_per_s"] / (2 * 1e9), rel=1e-12)


def test_in_the_table_and_the_csv(capsys, tmp_path):
    fit([ThroughputCB(), ProgressCB(bars=False), CSVLoggerCB(tmp_path / "h.csv")])
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[-1] == "samples_per_s" and "train_time" not in header
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert len(rows) == 2 and float(rows[0]["samples_per_s"]) > 0


def test_a_fit_without_training_has_no_rate_and_refusals():
    cb = ThroughputCB()
    t = fit([cb])
    t.fit(1, train=False)
    assert "samples_per_s" not in t.epoch_log and cb.log_keys(t) == set()
    with pytest.raises(CallbackSetupError, match="MetricsCB"):
        Trainer(data(), nn.CrossEntropyLoss(), torch.optim.SGD, model(), [BasicTrainCB(), ThroughputCB()]).fit(1)
    with pytest.raises(ValueError, match="both"): ThroughputCB(flops_per_sample=1e6)
    with pytest.raises(TypeError, match="tokens"): ThroughputCB(tokens=3)
    assert repr(ThroughputCB(flops_per_sample=2.0, peak_flops=1e12)) == "ThroughputCB(flops_per_sample=2.0, peak_flops=1000000000000.0)"
