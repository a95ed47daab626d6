"""Issue "Nothing lost, round four", the items in the loop: streams that yield nothing or more than their length, a
resumed fit whose budget was spent, the records of resumed fits, a preemption without checkpoints, `valid_every`
without validation, and a loader's own error said where it happened. Each failed before its fix."""
import csv
import os
import signal
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from AIsaac.all import (BasicTrainCB, Callback, CheckpointCB, CSVLoggerCB, DataLoaders, MetricsCB, Trainer,
                        latest_checkpoint, set_seed)
from AIsaac.runtime.checkpoint_file import checkpoint_files
from AIsaac.runtime.preemption import Preempted


def data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()


class Stream(IterableDataset):
    """Rows of `data`, in order; `claimed` is the length it says it has (None: no length)."""
    def __init__(self, n, claimed=None): self.x, self.y = data(n) if n else (torch.zeros(0, 4), torch.zeros(0).long()); self.claimed = claimed
    def __iter__(self): return iter(zip(self.x, self.y))
    def __len__(self):
        if self.claimed is None: raise TypeError("no length")
        return self.claimed


def trainer_on(train_dl, valid=True, *cbs):
    set_seed(0)
    x, y = data(16, seed=1)
    valid_dl = DataLoader(TensorDataset(x, y), batch_size=8) if valid else None
    return Trainer(DataLoaders(train_dl, valid_dl), nn.CrossEntropyLoss(), torch.optim.SGD,
                   nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), [BasicTrainCB(), MetricsCB(), *cbs])


# ---- streams ----
@pytest.mark.parametrize("kw", [{"max_steps": 5}, {"n_epochs": 2}])
def test_a_stream_that_yields_nothing_is_refused_at_its_first_epoch(kw):
    t = trainer_on(DataLoader(Stream(0), batch_size=4))
    with pytest.raises(ValueError, match="gave no batch in epoch 0.*would train nothing") as info: t.fit(**kw)
    assert ("never reach max_steps=5" in str(info.value)) == ("max_steps" in kw)
    assert t.step == 0


def test_a_stream_longer_than_its_length_trains_every_batch_with_valid_every():
    # 8 batches of 4; the stream says 16 rows (4 batches): validating every 2 steps, all 8 train (4 did before).
    seen = []

    class Count:
        def after_batch(self, trainer):
            if trainer.training: seen.append(trainer.batch_num)

    t = trainer_on(DataLoader(Stream(32, claimed=16), batch_size=4), True, Count())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own: the IterableDataset gave more than its length
        t.fit(1, valid_every=2)
    assert seen == list(range(8)) and t.step == 8


def test_valid_every_without_validation_is_refused():
    x, y = data()
    t = trainer_on(DataLoader(TensorDataset(x, y), batch_size=4), False)
    with pytest.raises(ValueError, match=r"valid_every=3\) .* no validation set"): t.fit(1, valid_every=3)
    t = trainer_on(DataLoader(TensorDataset(x, y), batch_size=4))
    with pytest.raises(ValueError, match=r"valid_every=3\) .* fit\(valid=False\)"): t.fit(1, valid_every=3, valid=False)


def test_an_error_in_a_streams_dataset_says_where():
    class Broken(IterableDataset):
        def __iter__(self):
            x, y = data(12)
            for i in range(12):
                if i == 9: raise KeyError("row 9: no 'label' field")
                yield x[i], y[i]

    t = trainer_on(DataLoader(Broken(), batch_size=4))
    with pytest.raises(KeyError) as info: t.fit(1)
    assert any("training loader while loading batch 2 of epoch 0" in n for n in getattr(info.value, "__notes__", []))


# ---- budgets ----
def test_resuming_a_fit_that_spent_its_max_steps_trains_nothing(tmp_path):
    x, y = data()
    t = trainer_on(DataLoader(TensorDataset(x, y), batch_size=4), True, CheckpointCB(tmp_path))
    t.fit(max_steps=10)
    newest, w = latest_checkpoint(tmp_path), {k: v.clone() for k, v in t.model.state_dict().items()}
    again = trainer_on(DataLoader(TensorDataset(x, y), batch_size=4), True, CheckpointCB(tmp_path))
    again.fit(max_steps=10, resume_from=tmp_path)
    assert again.step == 10 and latest_checkpoint(tmp_path) == newest
    assert all(torch.equal(v, w[k]) for k, v in again.model.state_dict().items())


# ---- preemption ----
def test_a_preemption_without_checkpoints_says_nothing_was_saved(tmp_path):
    x, y = data()

    class Signal:
        def after_batch(self, trainer):
            if trainer.training and trainer.batch_num == 2: os.kill(os.getpid(), signal.SIGTERM)

    t = trainer_on(DataLoader(TensorDataset(x, y), batch_size=4), True, Signal())
    with pytest.warns(RuntimeWarning, match="Nothing was saved"), pytest.raises(Preempted) as info: t.fit(2)
    assert "Add CheckpointCB('ckpt')" in str(info.value) and "resume_from=<" not in str(info.value)
    t = trainer_on(DataLoader(TensorDataset(x, y), batch_size=4), True, Signal(), CheckpointCB(tmp_path / "ck"))
    with pytest.warns(RuntimeWarning), pytest.raises(Preempted) as info: t.fit(2)
    assert f"resume_from={str(tmp_path / 'ck')!r}" in str(info.value)


# ---- the records of resumed fits ----
def csv_rows(path, drop_times=True):
    rows = list(csv.reader(open(path, newline="")))
    keep = [i for i, k in enumerate(rows[0]) if not (drop_times and k.endswith("_time"))]
    return [[r[i] for i in keep] for r in rows]


class StopAt(Callback):
    """Raises KeyboardInterrupt at `event` of (training?, epoch, batch)."""
    def __init__(self, event, at): self.at = at; setattr(self, event, self._maybe)
    def _maybe(self, t):
        if (t.training, t.epoch, t.batch_num) == self.at: raise KeyboardInterrupt


def run_records(tmp_path, name, stop=None, resume=False, **fit):
    x, y = data(48)
    folder = tmp_path / name
    cbs = [CheckpointCB(folder / "ck", every_n_batches=fit.pop("every", None)), CSVLoggerCB(folder / "log.csv")]
    if stop is not None: cbs.append(stop)
    t = trainer_on(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True), True, *cbs)
    if stop is not None:
        with pytest.raises(KeyboardInterrupt): t.fit(**fit)
        cbs = [CheckpointCB(folder / "ck"), CSVLoggerCB(folder / "log.csv")]
        t = trainer_on(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True), True, *cbs)
        t.fit(resume_from=folder / "ck", allow_changes=("callbacks",), **fit)  # (without the stop)
    else: t.fit(**fit)
    return t, csv_rows(folder / "log.csv")


@pytest.mark.parametrize("case", ["interrupted validation", "inside a record", "inside a record across epochs",
                                  "at a validation point"])
def test_every_record_of_a_resumed_fit_equals_the_uninterrupted_ones(tmp_path, case):
    if case == "interrupted validation":   # stopped in validation: the record resumes with its training loss
        fit, stop = {"n_epochs": 3}, StopAt("after_batch", (False, 1, 1))
    elif case == "inside a record":  # valid_every; checkpoint every 2 batches, stopped mid-record
        fit, stop = {"max_steps": 24, "valid_every": 5, "every": 2}, StopAt("before_batch", (True, 0, 8))
    elif case == "inside a record across epochs":  # the record of steps 11-15 spans epochs 0 and 1
        fit, stop = {"max_steps": 24, "valid_every": 5, "every": 2}, StopAt("before_batch", (True, 1, 2))
    else:  # resumed from the checkpoint written at a validation point (CheckpointCB writes one there)
        fit, stop = {"n_epochs": 3}, StopAt("before_batch", (True, 1, 0))
    full, rows = run_records(tmp_path, "full", **dict(fit))
    resumed, resumed_rows = run_records(tmp_path, "resumed", stop=stop, **dict(fit))
    assert resumed_rows == rows
    assert resumed.MetricsCB.losses_epoch == full.MetricsCB.losses_epoch
    assert all("" not in r for r in rows[1:])
