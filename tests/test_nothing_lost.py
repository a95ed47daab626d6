"""Issue 13, case by case: side runs touch nothing, every callback resumes, resume checks before it changes anything,
checkpoints are verified, setups that would go quietly wrong are refused at fit start, partial phases are not epochs,
every cleanup runs, and foreign exceptions keep their type."""
import csv
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (ActivationStatsCB, BasicTrainCB, Callback, CallbackError, CallbackSetupError, CheckpointCB,
                        CheckpointError, CSVLoggerCB, DataLoaders, EarlyStoppingCB, GradAccumCB, MetricsCB,
                        ProgressCB, SaveBestCB, TensorBoardCB, TerminateOnNaNCB, Trainer, set_seed)
from AIsaac.runtime.checkpoint_file import checkpoint_files, save_checkpoint
from AIsaac.runtime.model_state import trainer_state
from AIsaac.runtime.resume import read_checkpoint


def data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()


def make(*cbs, bs=4, n=48, opt=torch.optim.SGD, valid=True, loss=None, y=None, model=None):
    set_seed(0)
    x, yy = data(n)
    y = yy if y is None else y
    ds = TensorDataset(x, y)
    dls = DataLoaders(DataLoader(ds, batch_size=bs, shuffle=True), DataLoader(ds, batch_size=16) if valid else None)
    model = model or nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return Trainer(dls, loss or nn.CrossEntropyLoss(), opt, model, [BasicTrainCB(), MetricsCB(), *cbs])


def weights(t): return {k: v.clone() for k, v in t.model.state_dict().items()}


def same(a, b): return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class KillAt(Callback):
    """Stands in for SIGKILL at a training batch: raises KeyboardInterrupt before (epoch, batch) starts."""
    order = -100

    def __init__(self, at): self.at = at

    def before_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


# ---- data loss ----
def untimed_csv(path):
    rows = list(csv.reader(open(path, newline="")))
    keep = [i for i, k in enumerate(rows[0]) if not k.endswith("_time")]
    assert len(keep) < len(rows[0])  # the times are there, and left out here
    return [[r[i] for i in keep] for r in rows]


def test_lr_find_leaves_checkpoints_csv_and_best_byte_for_byte(tmp_path):
    cbs = lambda: [CheckpointCB(tmp_path / "ckpt"), CSVLoggerCB(tmp_path / "log.csv"),
                   SaveBestCB(path=tmp_path / "best.pt"), EarlyStoppingCB(patience=1), ProgressCB(bars=False)]
    t = make(*cbs())
    t.fit(2, lr=0.1)
    before = snapshot(tmp_path)
    assert {str(p) for p in before} >= {"log.csv", "best.pt"} and len(before) >= 4
    t.lr_find(num_it=30, show_plot=False)
    assert snapshot(tmp_path) == before
    # and the run still resumes from its own, untouched, checkpoint
    resumed = make(*cbs())
    resumed.fit(2, lr=0.1, resume_from=tmp_path / "ckpt")
    assert same(weights(resumed), weights(t))


def test_keep_prunes_only_the_runs_own_files(tmp_path):
    a = make(CheckpointCB(tmp_path, every_n_batches=3, keep=2))
    a.fit(2, lr=0.1)
    mine = set(checkpoint_files(tmp_path))
    b = make(CheckpointCB(tmp_path, every_n_batches=3, keep=2))
    b.fit(2, lr=0.1)
    assert a.run_id != b.run_id and mine <= set(checkpoint_files(tmp_path))
    assert len(checkpoint_files(tmp_path, b.run_id)) == 2 and len(checkpoint_files(tmp_path)) == 4


class NaNLossAt(Callback):
    observes = ("get_loss",)

    def __init__(self, at): self.at = at

    def get_loss(self, trainer):
        if (trainer.epoch, trainer.batch_num) == self.at and trainer.training:
            trainer.loss = trainer.loss * float("nan")


def test_no_checkpoint_with_nan_weights_and_folder_resume_skips_one(tmp_path):
    t = make(CheckpointCB(tmp_path, every_n_batches=2), TerminateOnNaNCB(every=4))
    with pytest.warns(RuntimeWarning, match="not saving .* NaN"):
        t.fit(3, lr=0.1, callbacks=[NaNLossAt((1, 0))])  # read at batch 3: NaN weights by then
    assert not any(torch.isnan(p).any() for p in read_checkpoint(tmp_path)["model"].values())
    # A non-finite file written by other means is skipped by resume_from=folder, naming it.
    newest = read_checkpoint(tmp_path)
    good = checkpoint_files(tmp_path)[-1]
    bad = make()
    bad.fit(1, lr=0.1)
    with torch.no_grad(): bad.model[0].weight.fill_(float("nan"))
    bad.setup = newest["setup"]
    save_checkpoint(trainer_state(bad, 2, 0, None), tmp_path / "checkpoint-e2-b0-ffffffff.pt")
    with pytest.warns(RuntimeWarning, match="Skipped .*checkpoint-e2-b0-ffffffff.pt: its weights hold NaN"):
        state = read_checkpoint(tmp_path)
    assert same(state["model"], read_checkpoint(good)["model"])


# ---- exact resume of every callback ----
def interrupted_and_resumed(tmp_path, cbs, at, n_epochs=4, every=10, **kw):
    full = make(*cbs(tmp_path / "full"), **kw)
    full.fit(n_epochs, lr=0.1)
    t = make(*cbs(tmp_path / "run"), **kw)
    with pytest.raises(KeyboardInterrupt):
        t.fit(n_epochs, lr=0.1, callbacks=[CheckpointCB(tmp_path / "ckpt", every_n_batches=every, every_epoch=False),
                                          KillAt(at)])
    r = make(*cbs(tmp_path / "run"), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r.fit(n_epochs, lr=0.1, resume_from=tmp_path / "ckpt")
    return full, r


def test_grad_accum_resumes_exactly_in_the_middle_of_a_group(tmp_path):
    # 12 batches an epoch, groups of 3, a checkpoint every 10 batches: batch 10 is one into a group.
    full, r = interrupted_and_resumed(tmp_path, lambda d: [GradAccumCB(3)], at=(1, 1), n_epochs=2)
    assert same(weights(full), weights(r))


def test_early_stopping_save_best_metrics_csv_table_and_stats_resume_exactly(tmp_path):
    def cbs(d):
        d.mkdir(parents=True, exist_ok=True)
        return [EarlyStoppingCB(monitor="valid", patience=1, min_delta=0.05), SaveBestCB(path=d / "best.pt"),
                CSVLoggerCB(d / "log.csv"), ActivationStatsCB(), ProgressCB(bars=False)]
    full, r = interrupted_and_resumed(tmp_path, cbs, at=(2, 7), n_epochs=8, every=5)
    assert same(weights(full), weights(r))  # SaveBestCB restored the same epoch's weights
    assert full.EarlyStoppingCB.stopped_epoch == r.EarlyStoppingCB.stopped_epoch is not None
    assert full.SaveBestCB.best_epoch == r.SaveBestCB.best_epoch
    assert full.MetricsCB.losses_epoch == r.MetricsCB.losses_epoch
    assert list(full.MetricsCB.losses_batch) == list(r.MetricsCB.losses_batch)
    # The CSV rows are equal, but for the phases' wall times (records of each run, not of the training).
    assert untimed_csv(tmp_path / "full" / "log.csv") == untimed_csv(tmp_path / "run" / "log.csv")
    assert full.ProgressCB._rows == r.ProgressCB._rows
    assert all(torch.equal(a, b) for a, b in zip(full.ActivationStatsCB.stats, r.ActivationStatsCB.stats))


def test_tensorboard_counters_resume(tmp_path):
    pytest.importorskip("tensorboard")
    full, r = interrupted_and_resumed(tmp_path, lambda d: [TensorBoardCB(d / "tb")], at=(1, 3), n_epochs=3)
    assert (full.TensorBoardCB.epochs_logged, full.TensorBoardCB.batches_logged) == \
        (r.TensorBoardCB.epochs_logged, r.TensorBoardCB.batches_logged)


# ---- resume checks first, changes after ----
@pytest.fixture
def saved(tmp_path):
    t = make(CSVLoggerCB(tmp_path / "log.csv"))
    with pytest.raises(KeyboardInterrupt):
        t.fit(3, lr=0.1, callbacks=[CheckpointCB(tmp_path / "ckpt", every_n_batches=5), KillAt((1, 6))])
    return tmp_path


@pytest.mark.parametrize("change, match", [
    (dict(n_epochs=5), "n_epochs: saved 3, now 5"),
    (dict(lr=0.3), "param group 0 lr: saved 0.1, now 0.3.*allow_changes=\\('lr',\\)"),
    (dict(bs=6), "batch size: saved 4, now 6"),
    (dict(opt=torch.optim.Adam), "optimizer: saved 'torch.optim.sgd.SGD', now 'torch.optim.adam.Adam'. Resume"),
    (dict(extra=[GradAccumCB(2)]), "callbacks: new GradAccumCB"),
])
def test_a_refused_resume_says_why_and_changes_nothing(saved, change, match):
    t = make(CSVLoggerCB(saved / "log.csv"), *change.get("extra", []), bs=change.get("bs", 4),
             opt=change.get("opt", torch.optim.SGD))
    w, csv_bytes = weights(t), (saved / "log.csv").read_bytes()
    with pytest.raises(CheckpointError, match=match):
        t.fit(change.get("n_epochs", 3), lr=change.get("lr", 0.1), resume_from=saved / "ckpt")
    assert same(weights(t), w) and (saved / "log.csv").read_bytes() == csv_bytes and t.opt is None


def test_an_allowed_change_of_lr_takes_the_new_lr(saved):
    t = make(CSVLoggerCB(saved / "log.csv"))
    t.fit(3, lr=0.05, resume_from=saved / "ckpt", allow_changes=("lr",))
    assert t.opt.param_groups[0]["lr"] == 0.05


def test_a_flipped_bit_in_a_saved_tensor_is_refused(tmp_path):
    t = make()
    t.fit(1, lr=0.1, callbacks=[CheckpointCB(tmp_path)])
    path = checkpoint_files(tmp_path)[-1]
    state = torch.load(path, weights_only=True)
    w = state["model"]["0.weight"]
    w.view(torch.int32)[0, 0] ^= 1  # one bit of one weight
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="corrupt: its contents do not match the checksum"):
        make().fit(1, lr=0.1, resume_from=path)


# ---- setups refused at fit start, before any batch ----
def bare(*cbs, **kw):
    x, y = data()
    ds = TensorDataset(x, y)
    return Trainer(DataLoaders(DataLoader(ds, batch_size=4), DataLoader(ds, batch_size=16)), nn.CrossEntropyLoss(),
                   torch.optim.SGD, nn.Linear(4, 2), list(cbs), **kw)


@pytest.mark.parametrize("cbs", [[MetricsCB()], [ProgressCB(bars=False)]])
def test_no_callback_doing_the_step_is_refused_suggesting_basic_train(cbs):
    with pytest.raises(CallbackSetupError, match="No callback does the step phases.*Add BasicTrainCB\\(\\)"):
        bare(*cbs).fit(1)


@pytest.mark.parametrize("cb", [EarlyStoppingCB(), SaveBestCB(), CSVLoggerCB("unused.csv")])
def test_monitors_and_loggers_without_metrics_are_refused(cb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CallbackError, match="no callback fills it.*MetricsCB"):
        bare(BasicTrainCB(), cb).fit(1)
    with pytest.raises(CallbackError, match="monitors 'valid', which no callback puts in the epoch log"):
        bare(BasicTrainCB(), MetricsCB(), EarlyStoppingCB()).fit(1, valid=False)


class LogWeightNorm(Callback):
    """Logs the weights' norm with trainer.log in validation: a name no callback can announce at fit start."""
    def after_batch(self, trainer):
        if not trainer.training: trainer.log("wnorm", trainer.model[0].weight.detach().norm())


def test_a_monitor_on_a_trainer_log_name_is_accepted_and_a_missing_one_fails_at_the_first_epoch_end():
    # Lower is better for a made-up name only with mode='min': mode='auto' takes max for it.
    t = make(LogWeightNorm(), EarlyStoppingCB(monitor="wnorm", patience=1, mode="min"))
    t.fit(4, lr=0.1)  # the norm grows as the model learns: stopped after two epochs without a lower one
    norms = [m["wnorm"] for m in t.MetricsCB.metrics_epoch]
    assert len(norms) == 2 and norms[1] > norms[0] and t.EarlyStoppingCB.stopped_epoch == 1
    t = make(LogWeightNorm(), EarlyStoppingCB(monitor="wnrom"))
    with pytest.raises(CallbackError, match="monitors 'wnrom', which is not in the epoch log.*wnorm") as e:
        t.fit(3, lr=0.1)
    assert len(t.MetricsCB.losses_epoch) == 1  # not refused at fit start: found missing when epoch 0 ended


@pytest.mark.parametrize("lr", [float("inf"), True, float("nan"), "0.1", slice(0.1, float("inf"))])
def test_lr_must_be_finite_positive_real(lr):
    with pytest.raises(ValueError, match="lr must be a number > 0 and finite"): bare(BasicTrainCB()).fit(1, lr=lr)


def test_numpy_lr_is_welcome():
    t = bare(BasicTrainCB())
    t.fit(1, lr=np.float32(0.01))
    assert t.opt.param_groups[0]["lr"] == pytest.approx(0.01) and type(t.lr) is float


def test_empty_training_loader_is_refused():
    x, y = data()
    ds = TensorDataset(x, y)
    t = Trainer(DataLoaders(DataLoader(ds[:0] and TensorDataset(x[:0], y[:0]), batch_size=4),
                            DataLoader(ds, batch_size=16)), nn.CrossEntropyLoss(), torch.optim.SGD, nn.Linear(4, 2),
                [BasicTrainCB()])
    with pytest.raises(ValueError, match="training loader is empty"): t.fit(1)


def test_valid_none_trains_without_validation():
    t = make(valid=False)
    t.fit(2, lr=0.1)
    assert [set(r) for r in t.MetricsCB.losses_epoch] == [{"train"}, {"train"}]


def test_regression_loss_with_mismatched_shapes_is_refused_on_the_first_batch():
    x, _ = data()
    t = make(loss=nn.MSELoss(), y=x[:, 0], model=nn.Linear(4, 1))
    w = weights(t)
    with pytest.raises(CallbackError, match=r"MSELoss gets predictions of shape \(4, 1\) and targets of shape \(4,\)"):
        t.fit(1, lr=0.1)
    assert same(w, weights(t))


# ---- partial phases ----
class FailInValidation(Callback):
    def __init__(self, epoch, exc=RuntimeError): self.epoch, self.exc = epoch, exc

    def after_batch(self, trainer):
        if not trainer.training and trainer.epoch == self.epoch and trainer.batch_num == 1: raise self.exc("stop")


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_validation_is_no_epoch(tmp_path, exc):
    # Epoch 1's weights are the best so far (a high lr, then a stop in its validation): SaveBestCB must not take them.
    t = make(CSVLoggerCB(tmp_path / "log.csv"), SaveBestCB())
    t.fit(1, lr=0.1)
    kept = weights(t)
    with pytest.raises((CallbackError, KeyboardInterrupt)):
        t.fit(2, lr=0.1, callbacks=[FailInValidation(1, exc)])
    assert len(t.MetricsCB.losses_epoch) == 2  # one from the first fit, epoch 0 of the second: not epoch 1
    rows = list(csv.reader(open(tmp_path / "log.csv")))
    assert [r[0] for r in rows] == ["epoch", "0", "1"]  # the CSV counts across fits: "1" is the 2nd fit's epoch 0
    assert t.SaveBestCB.best_epoch == 0 and not same(weights(t), kept)


def test_a_phase_cancelled_at_its_start_writes_no_row(tmp_path):
    from AIsaac.all import CancelEpochException

    class SkipValid(Callback):
        def before_epoch(self, trainer):
            if not trainer.training and trainer.epoch == 1: raise CancelEpochException()
    t = make(CSVLoggerCB(tmp_path / "log.csv"), SkipValid())
    t.fit(3, lr=0.1)
    assert [r[0] for r in csv.reader(open(tmp_path / "log.csv"))] == ["epoch", "0", "2"]


def test_early_stopping_on_train_loss_without_validation_stops_cleanly():
    t = make(EarlyStoppingCB(monitor="train", patience=1), valid=False)
    t.fit(6, lr=5.0)
    assert t.EarlyStoppingCB.stopped_epoch is not None and len(t.MetricsCB.losses_epoch) == \
        t.EarlyStoppingCB.stopped_epoch + 1


# ---- every cleanup runs; errors keep their place and their type ----
class BadCleanup(Callback):
    order = -50

    def cleanup_fit(self, trainer): raise RuntimeError("cleanup broke")


def test_every_cleanup_runs_when_one_raises():
    t = make(ActivationStatsCB(), BadCleanup())
    with pytest.raises(CallbackError, match="BadCleanup failed at event 'cleanup_fit'.*cleanup broke"):
        t.fit(1, lr=0.1)
    assert all(not m._forward_hooks for m in t.model.modules())  # ActivationStatsCB's cleanup_fit still ran


def test_an_error_in_before_fit_is_reported_as_itself(tmp_path):
    class BadStart(Callback):
        order = -50

        def before_fit(self, trainer): raise ValueError("bad start")
    with pytest.raises(CallbackError, match="BadStart failed at event 'before_fit'.*bad start") as info:
        make(CheckpointCB(tmp_path), BadStart()).fit(1)
    assert isinstance(info.value.original, ValueError)
