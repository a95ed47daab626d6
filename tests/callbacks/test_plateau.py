"""ReduceLROnPlateauCB lowers the lr exactly as torch's ReduceLROnPlateau stepped by hand with the same values."""
import pytest
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from AIsaac.all import BasicTrainCB, CheckpointCB, ReduceLROnPlateauCB, Trainer


class Scripted:
    '''Plays MetricsCB with scripted valid losses'''

    def __init__(self, values): self.values = values
    def log_keys(self, trainer): return {'valid'}

    def cleanup_epoch(self, trainer):
        if not trainer.training: trainer.epoch_log = {'epoch': trainer.epoch, 'valid': self.values[trainer.epoch]}


class EpochLRs:
    '''Every param group's lr at each epoch's first training batch'''

    order = 100

    def before_fit(self, trainer): self.lrs = []

    def before_batch(self, trainer):
        if trainer.training and trainer.batch_num == 0: self.lrs.append([g['lr'] for g in trainer.opt.param_groups])


def by_hand(values, lrs, **kwargs):
    """The lrs each epoch trains with, a plain optimizer's scheduler stepped with `values` after each epoch."""
    opt = torch.optim.SGD([{'params': [torch.nn.Parameter(torch.zeros(1))], 'lr': lr} for lr in lrs])
    sched, seen = ReduceLROnPlateau(opt, **kwargs), []
    for v in values:
        seen.append([g['lr'] for g in opt.param_groups])
        opt.step()
        sched.step(v)
    return seen


def two_groups(m): return [m[0].parameters(), m[2].parameters()]


def test_lowers_the_lr_after_a_plateau_like_torch_by_hand(make_dls, make_model):
    values = [1.0, 0.5, 0.6, 0.55, 0.7, 0.4, 0.45, 0.5, 0.6, 0.39, 0.5]
    rec = EpochLRs()
    t = Trainer(make_dls(), torch.nn.CrossEntropyLoss(), torch.optim.SGD, make_model(),
                [BasicTrainCB(), Scripted(values), ReduceLROnPlateauCB(factor=0.5, patience=1, min_lr=[0, 0.004]), rec],
                splitter=two_groups)
    t.fit(len(values), lr=[0.1, 0.01])
    want = by_hand(values, [0.1, 0.01], mode='min', factor=0.5, patience=1, min_lr=[0, 0.004])
    assert rec.lrs == want
    # 0.6 and 0.55 do not improve on 0.5: reduced for epoch 4; 0.45, 0.5 not on 0.4: for epoch 8, group 1 at its floor
    assert rec.lrs[3] == [0.1, 0.01] and rec.lrs[4] == [0.05, 0.005] and rec.lrs[8] == [0.025, 0.004] == rec.lrs[-1]


def test_steps_with_the_real_valid_losses(make_trainer):
    rec, cb = EpochLRs(), ReduceLROnPlateauCB(mode='max', patience=1, factor=0.5)  # a loss never 'improves' upward
    seen = []

    class Values:
        order = 20  # after the monitors: the epoch's record is final
        def cleanup_epoch(self, trainer):
            if not trainer.training: seen.append(trainer.epoch_log['valid'])

    t = make_trainer([cb, rec, Values()])
    t.fit(6, lr=0.1)
    assert rec.lrs == by_hand(seen, [0.1], mode='max', factor=0.5, patience=1)
    assert rec.lrs[-1] == [0.025]


def test_refusals():
    with pytest.raises(ValueError, match="factor"): ReduceLROnPlateauCB(factor=1.5)
    with pytest.raises(ValueError, match="patience"): ReduceLROnPlateauCB(patience=-1)
    with pytest.raises(ValueError, match="sets optimizer itself"): ReduceLROnPlateauCB(optimizer=None)


class StopAt:
    def __init__(self, at): self.at = at

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


def test_resumes_exactly(make_trainer, tmp_path):
    make = lambda *cbs: make_trainer([ReduceLROnPlateauCB(mode='max', patience=1, factor=0.5), EpochLRs(), *cbs])
    full = make()
    full.fit(6, lr=0.1)
    with pytest.raises(KeyboardInterrupt):
        make().fit(6, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=2), StopAt((3, 4))])
    resumed = make()
    resumed.fit(6, lr=0.1, resume_from=tmp_path, allow_changes=("callbacks",))
    assert resumed.EpochLRs.lrs == full.EpochLRs.lrs[4:]  # resumed within epoch 3: the epochs after it
    assert resumed.opt.param_groups[0]['lr'] == full.opt.param_groups[0]['lr'] == 0.025
    assert resumed.ReduceLROnPlateauCB.scheduler.state_dict() == full.ReduceLROnPlateauCB.scheduler.state_dict()
    for p, q in zip(resumed.model.parameters(), full.model.parameters()): assert torch.equal(p, q)


def test_nan_values_do_not_cut_the_lr_and_are_said(make_dls, make_model):
    """Issue 33: NaN validation numbers counted as 'no improvement' and cut the lr (1e-3 to 1e-5 in 4 epochs) without
    a word; a NaN record is now passed over, with a warning."""
    nan = float("nan")
    rec = EpochLRs()
    t = Trainer(make_dls(), torch.nn.CrossEntropyLoss(), torch.optim.SGD, make_model(),
                [BasicTrainCB(), Scripted([1.0, nan, nan, nan, nan]), ReduceLROnPlateauCB(patience=1), rec])
    with pytest.warns(UserWarning, match=r"ReduceLROnPlateauCB: 'valid' is nan.*lr is left as it is"):
        t.fit(5, lr=1e-3)
    assert rec.lrs == [[1e-3]] * 5
    assert t.ReduceLROnPlateauCB.scheduler.num_bad_epochs == 0
