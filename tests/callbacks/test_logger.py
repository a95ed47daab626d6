"""LoggerCB, the base of the tracker loggers: a four-method subclass in a real fit gets one epoch write per epoch and
one batch write per training batch, whose numbers are those of the same training by hand; steps continue across fits."""
from functools import partial

import pytest
import torch
from torch import nn
from torch.optim.lr_scheduler import StepLR

from AIsaac.all import BatchSchedulerCB, CallbackError, LoggerCB, epoch_scalars, fit_hparams


class ListLogger(LoggerCB):
    """A tracker that keeps what it is given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.params, self.epochs, self.batches, self.opened, self.closed = [], [], [], 0, 0

    def open(self, trainer): self.opened += 1
    def write_params(self, params): self.params.append(params)
    def close(self): self.closed += 1

    def write_scalars(self, values, step, per):
        (self.epochs if per == "epoch" else self.batches).append((step, dict(values)))


def by_hand(model, dls, epochs, lrs):
    """Plain PyTorch: per epoch, the training batch losses with their row counts, and the validation loss."""
    opt = torch.optim.SGD(model.parameters(), lr=lrs[0])
    lf, out, i = nn.CrossEntropyLoss(), [], 0
    for _ in range(epochs):
        train = []
        for xb, yb in dls.train:
            for g in opt.param_groups: g["lr"] = lrs[i]
            loss = lf(model(xb), yb)
            train.append((loss.item(), len(xb)))
            loss.backward()
            opt.step()
            opt.zero_grad()
            i += 1
        with torch.no_grad():
            xv, yv = map(torch.cat, zip(*dls.valid))
            out.append((train, lf(model(xv), yv).item()))
    return out


def test_one_epoch_write_per_epoch_and_batch_writes_equal_the_training_by_hand(make_trainer, make_model, make_dls):
    logger = ListLogger(hparams={"note": "x"})
    # The lr falls by half every 3 batches, so each batch's logged lr is the one its step used.
    sched = BatchSchedulerCB(partial(StepLR, step_size=3, gamma=0.5))
    t = make_trainer([logger, sched])
    t.fit(2, lr=0.1)
    lrs = [0.1 * 0.5 ** (i // 3) for i in range(16)]  # 2 epochs of 8 batches
    hand = by_hand(make_model(), make_dls(), 2, lrs)
    assert [s for s, _ in logger.epochs] == [0, 1] and [s for s, _ in logger.batches] == list(range(16))
    for (_, values), (train, valid) in zip(logger.epochs, hand):
        assert values["loss/train"] == pytest.approx(sum(l * n for l, n in train) / sum(n for _, n in train), rel=1e-5)
        assert values["loss/valid"] == pytest.approx(valid, rel=1e-5)
    assert logger.epochs[-1][1] == epoch_scalars(t.epoch_log) == logger.last_scalars
    losses = [l for train, _ in hand for l, _ in train]
    assert [v["loss/train_batch"] for _, v in logger.batches] == pytest.approx(losses, rel=1e-5)
    assert [v["lr/train_batch"] for _, v in logger.batches] == pytest.approx(lrs)
    assert logger.params == [{**fit_hparams(t), "note": "x"}] and logger.params[0]["lr"] == 0.1
    assert (logger.opened, logger.closed) == (1, 1)


def test_steps_continue_across_fits_and_later_params_are_prefixed(make_trainer):
    logger = ListLogger(log_batches=False)
    t = make_trainer([logger])
    t.fit(2, lr=0.1)
    t.fit(1, lr=0.05)
    assert [s for s, _ in logger.epochs] == [0, 1, 2] and logger.batches == []
    assert logger.params[1] == {f"fit1/{k}": v for k, v in fit_hparams(t).items()}
    assert logger.params[1]["fit1/lr"] == 0.05
    assert (logger.opened, logger.closed) == (2, 2)
    state = logger.state_dict()
    fresh = ListLogger(log_batches=False)
    fresh.load_state_dict(state)
    make_trainer([fresh]).fit(1)
    assert [s for s, _ in fresh.epochs] == [3]  # a resumed logger carries on at the same step


def test_a_failed_fit_is_closed_and_keeps_what_was_written(make_trainer):
    class FailInEpoch1:
        def before_epoch(self, trainer):
            if trainer.epoch == 1: raise RuntimeError("boom")
    logger = ListLogger()
    with pytest.raises(CallbackError, match="boom"):
        make_trainer([logger, FailInEpoch1()]).fit(3)
    assert [s for s, _ in logger.epochs] == [0] and len(logger.batches) == 8 and logger.closed == 1


def test_only_the_main_process_writes(make_trainer):
    logger = ListLogger()
    t = make_trainer([logger])
    t.is_main_process = False  # what AccelerateCB sets on every process but the first
    t.fit(1)
    assert (logger.params, logger.epochs, logger.batches, logger.opened, logger.closed) == ([], [], [], 0, 0)


def test_lr_find_writes_nothing(make_trainer):
    logger = ListLogger()
    make_trainer([logger]).lr_find(num_it=10, show_plot=False, end_lr=1e-2)
    assert (logger.params, logger.epochs, logger.batches, logger.opened) == ([], [], [], 0)


def test_without_metrics_it_is_refused_at_fit_start(make_trainer):
    logger = ListLogger()
    with pytest.raises(CallbackError, match="ListLogger reads the epoch log, but no callback fills it.*MetricsCB"):
        make_trainer([logger], metrics=False).fit(1)
    assert logger.opened == 0


def test_epoch_scalars_names_losses_records_and_metrics():
    log = {"epoch": 3, "train": 0.5, "valid": 0.25, "Accuracy": 0.75, "lr": 1e-3, "lr_1": 1e-2, "mom": 0.9,
           "train_time": 1.5, "flag": True, "name": "x"}
    assert epoch_scalars(log) == {"loss/train": 0.5, "loss/valid": 0.25, "metrics/Accuracy": 0.75,
                                  "records/lr": 1e-3, "records/lr_1": 1e-2, "records/mom": 0.9,
                                  "records/train_time": 1.5}
