from functools import partial

import pytest
import torch
from torch.optim.lr_scheduler import ExponentialLR, OneCycleLR, StepLR

from AIsaac.all import BatchSchedulerCB, EpochSchedulerCB, OneCycleSchedulerCB


def by_hand(sched_func, n_epochs, n_batches, per_batch, lr=0.1, opt_func=torch.optim.SGD):
    """The lrs a plain optimizer sees at each training batch with the scheduler stepped by hand."""
    opt = opt_func([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched, lrs = sched_func(opt), []
    for _ in range(n_epochs):
        for _ in range(n_batches):
            lrs.append(opt.param_groups[0]['lr'])
            opt.step()
            if per_batch: sched.step()
        if not per_batch: sched.step()
    return lrs


def test_batch_scheduler_matches_torch(make_trainer, recorder):
    func = partial(StepLR, step_size=3, gamma=0.5)
    t = make_trainer([BatchSchedulerCB(func), recorder])
    t.fit(2, lr=0.1)
    assert recorder.lrs == by_hand(func, 2, len(t.dls.train), per_batch=True)
    assert len(set(recorder.lrs)) > 3


def test_epoch_scheduler_matches_torch(make_trainer, recorder):
    func = partial(ExponentialLR, gamma=0.5)
    t = make_trainer([EpochSchedulerCB(func), recorder])
    t.fit(3, lr=0.1)
    assert recorder.lrs == by_hand(func, 3, len(t.dls.train), per_batch=False)
    assert recorder.lrs[0] == 0.1 and recorder.lrs[-1] == 0.025


def test_scheduler_does_not_step_in_validation(make_trainer):
    cb = BatchSchedulerCB(partial(StepLR, step_size=1))
    t = make_trainer([cb])
    t.fit(1, lr=0.1)
    assert cb.scheduler.last_epoch == len(t.dls.train)
    t.fit(1, lr=0.1, train=False)
    assert cb.scheduler.last_epoch == 0


def test_one_cycle_matches_torch(make_trainer, recorder):
    t = make_trainer([OneCycleSchedulerCB(pct_start=0.3), recorder], opt_func=torch.optim.Adam)
    t.fit(3, lr=0.05)
    n = len(t.dls.train)
    expected = by_hand(partial(OneCycleLR, max_lr=0.05, total_steps=3 * n, pct_start=0.3), 3, n, True, lr=0.05,
                       opt_func=torch.optim.Adam)
    assert recorder.lrs == expected
    assert max(recorder.lrs) == pytest.approx(0.05, rel=0.05)


def test_one_cycle_refuses_what_it_sets():
    with pytest.raises(ValueError, match="max_lr"): OneCycleSchedulerCB(max_lr=1.)


def test_one_cycle_without_training_builds_nothing(make_trainer):
    cb = OneCycleSchedulerCB()
    make_trainer([cb]).fit(1, train=False)
    assert cb.scheduler is None


def test_scheduler_func_must_be_callable():
    with pytest.raises(TypeError, match="partial"): BatchSchedulerCB(3)


class _StopAt:
    '''Raises KeyboardInterrupt after the step of training batch `at` (epoch, batch), as Ctrl-C would'''

    def __init__(self, at): self.at = at

    def after_batch(self, trainer):
        if trainer.training and (trainer.epoch, trainer.batch_num) == self.at: raise KeyboardInterrupt


@pytest.mark.parametrize("make_cb", [lambda: OneCycleSchedulerCB(), lambda: WarmupCosineSchedulerCB(warmup=5),
                                     lambda: EpochSchedulerCB(partial(StepLR, step_size=2, gamma=0.5))])
def test_resumed_fit_continues_the_schedule(make_trainer, recorder, tmp_path, make_cb):
    from AIsaac.all import CheckpointCB
    full = make_trainer([make_cb(), recorder])
    full.fit(3, lr=0.1)
    lrs, weights = recorder.lrs, [p.detach().clone() for p in full.model.parameters()]
    with pytest.raises(KeyboardInterrupt):
        make_trainer([make_cb()]).fit(3, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=2),
                                                            _StopAt((1, 4))])
    resumed = make_trainer([make_cb(), recorder])
    resumed.fit(3, lr=0.1, resume_from=tmp_path, allow_changes=("callbacks",))  # recorder is new; from 4 batches into epoch 1 (8 batches per epoch)
    assert recorder.lrs == lrs[8 + 4:]
    for p, q in zip(resumed.model.parameters(), weights): assert torch.equal(p, q)


class GroupLRs:
    '''Records every param group's lr at each training batch'''

    order = 100

    def before_fit(self, trainer): self.lrs = []

    def before_batch(self, trainer):
        if trainer.training: self.lrs.append([g['lr'] for g in trainer.opt.param_groups])


def three_groups(m): return [m[0].parameters(), [m[2].weight], [m[2].bias]]


def test_one_cycle_keeps_each_groups_peak_like_torch_with_per_group_max_lr(make_dls, make_model):
    from AIsaac.all import BasicTrainCB, Trainer
    rec = GroupLRs()
    model = make_model()
    t = Trainer(make_dls(), torch.nn.CrossEntropyLoss(), torch.optim.Adam, model,
                [BasicTrainCB(), OneCycleSchedulerCB(), rec], splitter=three_groups)
    t.fit(2, lr=slice(1e-5, 1e-3))
    # Plain PyTorch: the same groups with OneCycleLR given one max_lr per group.
    ref = make_model()
    opt = torch.optim.Adam([{'params': ref[0].parameters()}, {'params': [ref[2].weight]}, {'params': [ref[2].bias]}])
    n = 2 * len(t.dls.train)
    sched, want = OneCycleLR(opt, max_lr=[1e-5, 1e-4, 1e-3], total_steps=n), []
    for _ in range(n):
        want.append([g['lr'] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert len(rec.lrs) == n
    for got, exp in zip(rec.lrs, want): assert got == pytest.approx(exp, rel=1e-12)
    peak = max(range(n), key=lambda i: rec.lrs[i][2])
    assert rec.lrs[peak] == pytest.approx([1e-5, 1e-4, 1e-3], rel=1e-2)  # not flattened to the last group's lr


def test_step_scheduler_keeps_the_group_ratios(make_dls, make_model):
    from AIsaac.all import BasicTrainCB, Trainer
    rec = GroupLRs()
    t = Trainer(make_dls(), torch.nn.CrossEntropyLoss(), torch.optim.SGD, make_model(),
                [BasicTrainCB(), EpochSchedulerCB(partial(ExponentialLR, gamma=0.5)), rec], splitter=three_groups)
    t.fit(3, lr=[1e-3, 2e-3, 4e-3])
    for lrs in rec.lrs: assert lrs[1] / lrs[0] == pytest.approx(2) and lrs[2] / lrs[0] == pytest.approx(4)
    assert rec.lrs[-1] == pytest.approx([2.5e-4, 5e-4, 1e-3])


# ---- schedules spread over the fit: a step budget, warmup + cosine, loaders without a length ----
import math

from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, IterableDataset

from AIsaac.all import Callback, CancelFitException, GradAccumCB, Order, WarmupCosineSchedulerCB


class Budget(Callback):
    '''Plays the trainer's step budget, fit(max_steps=n): `trainer.max_steps = n`, and the fit stops once n steps are done'''

    order = Order.FIRST

    def __init__(self, n): self.n = n
    def before_fit(self, trainer): trainer.max_steps = self.n

    def before_batch(self, trainer):
        if trainer.training and trainer.step >= self.n: raise CancelFitException()


def hf_cosine(warmup, total, end=0.):
    """Hugging Face's get_cosine_schedule_with_warmup factor (written out here), with a floor `end`."""
    def f(k):
        if k < warmup: return k / max(1, warmup)
        progress = (k - warmup) / max(1, total - warmup)
        return end + (1 - end) * max(0., 0.5 * (1. + math.cos(math.pi * progress)))
    return f


def test_warmup_cosine_matches_lambda_lr_by_hand(make_trainer, recorder):
    t = make_trainer([WarmupCosineSchedulerCB(warmup=0.25, end_factor=0.1), recorder], opt_func=torch.optim.AdamW)
    t.fit(2, lr=0.01)
    n = 2 * len(t.dls.train)  # 16 batches, 4 of warmup
    expected = by_hand(lambda opt: LambdaLR(opt, hf_cosine(4, n, 0.1)), 2, len(t.dls.train), True, lr=0.01,
                       opt_func=torch.optim.AdamW)
    assert recorder.lrs == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert recorder.lrs[0] == 0 and recorder.lrs[4] == pytest.approx(0.01) and recorder.lrs[-1] > 0.001


def test_warmup_in_steps_and_refusals():
    assert WarmupCosineSchedulerCB(warmup=3).warmup == 3
    for bad in (1.0, -1, True, "10%"):
        with pytest.raises(ValueError, match="warmup"): WarmupCosineSchedulerCB(warmup=bad)
    with pytest.raises(ValueError, match="end_factor"): WarmupCosineSchedulerCB(end_factor=2)


def test_warmup_longer_than_the_fit_is_refused(make_trainer):
    with pytest.raises(ValueError, match="longer than the fit's 8"): make_trainer([WarmupCosineSchedulerCB(warmup=9)]).fit(1)


class RealStepLRs(Callback):
    '''The lr of param group 0 used by each real optimizer step (read where trainer.step moves)'''

    order = 100

    def before_fit(self, trainer): self.lrs, self._step = [], trainer.step
    def before_batch(self, trainer):
        if trainer.training: self._lr = trainer.opt.param_groups[0]['lr']

    def after_batch(self, trainer):
        if trainer.training and trainer.step != self._step: self.lrs.append(self._lr)
        self._step = trainer.step


@pytest.mark.parametrize("accumulate", [1, 2])
@pytest.mark.parametrize("make_cb, make_sched", [
    (lambda: OneCycleSchedulerCB(pct_start=0.3), lambda opt, n: OneCycleLR(opt, max_lr=0.05, total_steps=n, pct_start=0.3)),
    (lambda: WarmupCosineSchedulerCB(warmup=3), lambda opt, n: LambdaLR(opt, hf_cosine(3, n)))])
def test_a_step_budget_sizes_the_schedule_in_optimizer_steps(make_trainer, make_cb, make_sched, accumulate):
    rec, cb = RealStepLRs(), make_cb()
    t = make_trainer([cb, rec, Budget(11), *([GradAccumCB(accumulate)] if accumulate > 1 else [])],
                     opt_func=torch.optim.Adam)
    t.fit(5, lr=0.05)  # 8 batches an epoch: 11 steps end in epoch 1 (or 2, accumulating 2 batches a step)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    sched, want = make_sched(opt, 11), []
    for _ in range(11):
        want.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    assert t.step == 11 and cb.total == 11
    assert rec.lrs == pytest.approx(want, rel=1e-12, abs=1e-15)


class Stream(IterableDataset):
    '''A stream of unknown length (no __len__)'''

    def __init__(self, n=64): self.n = n

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for _ in range(self.n):
            x = torch.randn(4, generator=g)
            yield x, (x[0] > 0).long()


@pytest.mark.parametrize("cb", [OneCycleSchedulerCB(), WarmupCosineSchedulerCB()])
def test_a_loader_without_length_needs_max_steps(make_trainer, make_dls, cb):
    from AIsaac.all import DataLoaders
    dls = DataLoaders(DataLoader(Stream(), batch_size=8), make_dls().valid)
    with pytest.raises(TypeError, match=r"has no length .*fit\(\.\.\., max_steps=N\)"): make_trainer([cb], dls=dls).fit(1)
    t = make_trainer([cb, Budget(5)], dls=dls)
    t.fit(1, lr=0.05)
    assert t.step == 5 and cb.total == 5
    t.fit(1, train=False)  # a fit without training builds no schedule, and needs no length
    assert cb.scheduler is None


# ---- FitSchedulerCB: any schedule sized by the fit's optimizer steps, against Hugging Face's stepped by hand ----
from AIsaac.all import FitSchedulerCB


class StepLRs(RealStepLRs):
    '''RealStepLRs, also counting GradAccumCB's last step of an epoch (taken at after_epoch)'''

    def after_epoch(self, trainer): self.after_batch(trainer)


def hf_schedule(name, opt, warmup, total, end_factor=0., power=1.):
    """transformers' scheduler for `name`, `end_factor` as its floor (polynomial: lr_end; cosine: min_lr_rate)."""
    tf = pytest.importorskip("transformers")
    if name == "linear": return tf.get_linear_schedule_with_warmup(opt, warmup, total)
    if name == "cosine": return tf.get_cosine_with_min_lr_schedule_with_warmup(opt, warmup, total, min_lr_rate=end_factor)
    if name == "polynomial":
        return tf.get_polynomial_decay_schedule_with_warmup(opt, warmup, total, lr_end=end_factor * opt.defaults["lr"],
                                                            power=power)
    return tf.get_constant_schedule_with_warmup(opt, warmup)


def stepped_by_hand(make_sched, n_steps, lr=0.05):
    """The lr of each of `n_steps` optimizer steps, the scheduler stepped after each, as a plain loop does."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched, lrs = make_sched(opt), []
    for _ in range(n_steps):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("accumulate", [1, 4])
@pytest.mark.parametrize("name, kwargs", [("linear", {}), ("cosine", {"end_factor": 0.1}),
                                          ("polynomial", {"power": 2., "end_factor": 0.01}), ("constant", {})])
def test_named_schedules_match_hugging_face_in_optimizer_steps(make_trainer, name, kwargs, accumulate):
    rec, cb = StepLRs(), FitSchedulerCB(name, warmup=3, **kwargs)
    t = make_trainer([cb, rec, *([GradAccumCB(accumulate)] if accumulate > 1 else [])], n_train=168)
    t.fit(3, lr=0.05)  # 21 batches an epoch: 21 steps, or 6 accumulating 4 (the last of 1 batch)
    total = 3 * (21 if accumulate == 1 else 6)
    assert cb.total == total == t.step
    want = stepped_by_hand(lambda opt: hf_schedule(name, opt, 3, total, **kwargs), total)
    assert rec.lrs == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert rec.lrs[0] == 0 and rec.lrs[3] == pytest.approx(0.05)


@pytest.mark.parametrize("accumulate", [1, 4])
def test_a_schedule_function_gets_the_fit_s_total_steps_under_max_steps(make_trainer, accumulate):
    tf = pytest.importorskip("transformers")
    rec, totals = StepLRs(), []

    def schedule(opt, total_steps):
        totals.append(total_steps)
        return tf.get_linear_schedule_with_warmup(opt, 2, total_steps)

    cb = FitSchedulerCB(schedule)
    t = make_trainer([cb, rec, *([GradAccumCB(accumulate)] if accumulate > 1 else [])])
    t.fit(max_steps=10, lr=0.05)  # 8 batches an epoch: across epochs, or 2 steps an epoch accumulating 4
    assert totals == [10] and t.step == 10
    assert rec.lrs == pytest.approx(stepped_by_hand(lambda opt: tf.get_linear_schedule_with_warmup(opt, 2, 10), 10),
                                    rel=1e-12, abs=1e-15)
    t.fit(2, max_steps=100, lr=0.05)  # two epochs end the fit first: the schedule is theirs
    assert totals[-1] == 2 * (8 if accumulate == 1 else 2)


def test_a_linear_schedule_with_grad_accum_trains_as_a_plain_loop(make_trainer, make_dls, make_model):
    tf = pytest.importorskip("transformers")
    t = make_trainer([FitSchedulerCB("linear", warmup=2), GradAccumCB(4)], n_train=88)  # 11 batches: 3 steps an epoch
    t.fit(2, lr=0.1, valid=False)
    # Plain PyTorch: the gradients of 4 batches averaged (3 for the last), a step, the scheduler stepped.
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = tf.get_linear_schedule_with_warmup(opt, 2, 6)
    for _ in range(2):
        batches = list(make_dls(n_train=88).train)
        for i in range(0, len(batches), 4):
            group = batches[i:i + 4]
            for x, y in group: torch.nn.functional.cross_entropy(model(x), y).backward()
            for p in model.parameters(): p.grad /= len(group)
            opt.step(); sched.step(); opt.zero_grad()
    for p, q in zip(t.model.parameters(), model.parameters()): torch.testing.assert_close(p, q)
    assert t.FitSchedulerCB.scheduler.get_last_lr() == sched.get_last_lr() == [0.]


def test_warmup_cosine_is_the_cosine_configuration(make_trainer):
    a, b = WarmupCosineSchedulerCB(warmup=3, end_factor=0.1), FitSchedulerCB("cosine", warmup=3, end_factor=0.1)
    lrs = []
    for cb in (a, b):
        rec = StepLRs()
        make_trainer([cb, rec, GradAccumCB(3)]).fit(2, lr=0.05)
        lrs.append(rec.lrs)
    assert lrs[0] == lrs[1] and len(lrs[0]) == a.total == 2 * 3
    assert isinstance(a, FitSchedulerCB) and repr(a) == "WarmupCosineSchedulerCB(warmup=3, end_factor=0.1)"


def test_fit_scheduler_refusals():
    with pytest.raises(ValueError, match="unknown schedule 'constant_with_warmup'.*'constant' with warmup"):
        FitSchedulerCB("constant_with_warmup", warmup=10)
    with pytest.raises(TypeError, match="opt, total_steps"): FitSchedulerCB(3)
    with pytest.raises(ValueError, match="configure a named schedule"): FitSchedulerCB(lambda o, n: None, warmup=5)
    with pytest.raises(ValueError, match="power"): FitSchedulerCB("polynomial", power=0)
    with pytest.raises(ValueError, match="FitSchedulerCB: warmup"): FitSchedulerCB("linear", warmup=1.5)


def test_valid_every_and_warmup_count_optimizer_steps_under_grad_accum(make_trainer):
    # Every interval a user sets counts optimizer steps: validation every 3 steps and a 3-step warmup, accumulating 4.
    rec, cb = StepLRs(), FitSchedulerCB("linear", warmup=3)

    class ValidSteps(Callback):
        def before_fit(self, trainer): self.at = []
        def before_epoch(self, trainer):
            if not trainer.training: self.at.append(trainer.step)

    v = ValidSteps()
    t = make_trainer([cb, rec, v, GradAccumCB(4)], n_train=128)  # 16 batches: 4 steps an epoch
    t.fit(2, lr=0.05, valid_every=3)
    assert v.at == [3, 6, 8] and cb.total == 8
    assert rec.lrs[:4] == pytest.approx([0, 0.05 / 3, 0.1 / 3, 0.05])


def test_a_skipped_step_does_not_move_the_schedule(make_trainer):
    # As a GradScaler's skipped step (inf gradients): no optimizer step, so trainer.step and the schedule stay.
    class SkipEveryThird(Callback):
        claims = ('step',)
        def step(self, trainer):
            if trainer.batch_num % 3 != 2: trainer.opt.step()

    rec, cb = StepLRs(), FitSchedulerCB("linear", warmup=2)
    t = make_trainer([cb, rec, SkipEveryThird()])
    t.fit(2, lr=0.05)  # 8 batches an epoch, 2 of them skipped: 12 real steps of a schedule sized for 16
    assert t.step == 12 and cb.total == 16 and cb.scheduler.last_epoch == 12
    want = stepped_by_hand(lambda opt: hf_schedule("linear", opt, 2, 16), 12)
    assert rec.lrs == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_a_resumed_fit_under_grad_accum_continues_the_schedule(make_trainer, recorder, tmp_path):
    from AIsaac.all import CheckpointCB
    make = lambda: [FitSchedulerCB("polynomial", warmup=2, power=2.), GradAccumCB(3)]
    full = make_trainer([*make(), recorder])
    full.fit(3, lr=0.1)  # 8 batches an epoch: 3 steps (3 + 3 + 2 batches), 9 in all
    lrs, weights = recorder.lrs, [p.detach().clone() for p in full.model.parameters()]
    assert full.FitSchedulerCB.total == 9
    with pytest.raises(KeyboardInterrupt):
        make_trainer(make()).fit(3, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=2), _StopAt((1, 4))])
    resumed = make_trainer([*make(), recorder])
    resumed.fit(3, lr=0.1, resume_from=tmp_path, allow_changes=("callbacks",))  # from 4 batches into epoch 1, mid-group
    assert recorder.lrs == lrs[8 + 4:]
    for p, q in zip(resumed.model.parameters(), weights): assert torch.equal(p, q)
