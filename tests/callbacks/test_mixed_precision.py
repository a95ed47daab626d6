import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from AIsaac.all import DeviceCB, MixedPrecisionCB, OneCycleSchedulerCB


def hand_loop(model, dls, dtype, lr=0.1, n_epochs=1, device="cpu", **scaler_kwargs):
    """Plain PyTorch mixed precision: autocast around forward and loss; GradScaler for float16."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device, **scaler_kwargs) if dtype is torch.float16 else None
    for _ in range(n_epochs):
        for xb, yb in dls.train:
            xb, yb = xb.to(device), yb.to(device)
            with torch.autocast(device, dtype=dtype):
                loss = nn.functional.cross_entropy(model(xb), yb)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            opt.zero_grad()
    return scaler


class Spy:
    '''Reads dtypes and the autocast state where other callbacks would'''

    def __init__(self): self.seen = []

    def after_batch(self, trainer):
        self.seen.append((trainer.training, trainer.preds.dtype, trainer.loss.dtype, torch.is_autocast_enabled("cpu")))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_matches_plain_autocast_loop(make_trainer, make_model, make_dls, dtype):
    model, ref = make_model(), make_model()
    spy = Spy()
    t = make_trainer([MixedPrecisionCB(dtype), spy], model=model)
    t.fit(2, lr=0.1)
    scaler = hand_loop(ref, make_dls(), dtype, n_epochs=2)
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)
    assert all(pd == dtype and ld == torch.float32 and not ac for _, pd, ld, ac in spy.seen)  # autocast left
    assert {tr for tr, *_ in spy.seen} == {True, False}
    assert not torch.is_autocast_enabled("cpu")
    assert 'step' not in vars(t.opt) and t.grad_scaler is None  # the scaled step was for that fit only
    if dtype is torch.float16: assert t.MixedPrecisionCB.scaler.get_scale() == scaler.get_scale()
    assert t.MetricsCB.losses_epoch[-1]['train'] < t.MetricsCB.losses_epoch[0]['train'] * 1.5


def test_float16_skips_steps_with_overflowing_gradients(make_trainer, make_model, make_dls):
    # A scale of 2**40 overflows float16 gradients: the scaler must skip those steps and lower the scale.
    model, ref = make_model(), make_model()
    t = make_trainer([MixedPrecisionCB(torch.float16, init_scale=2.**24)], model=model)
    before = copy.deepcopy(model.state_dict())
    t.fit(2, lr=0.1)
    scaler = hand_loop(ref, make_dls(), torch.float16, n_epochs=2, init_scale=2.**24)
    assert t.MixedPrecisionCB.scaler.get_scale() == scaler.get_scale() < 2.**24
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_bfloat16_changes_no_step_phase(make_trainer):
    t = make_trainer([MixedPrecisionCB()])
    assert t.plan['backward'] == (t.BasicTrainCB.backward,)
    t16 = make_trainer([MixedPrecisionCB(torch.float16)])
    assert t16.plan['backward'] == (t16.MixedPrecisionCB.backward,)


def test_autocast_is_left_when_a_batch_fails(make_trainer):
    class Boom:
        observes = ('get_loss',)
        def get_loss(self, trainer): raise RuntimeError("boom")
    t = make_trainer([MixedPrecisionCB(), Boom()])
    with pytest.raises(Exception, match="boom"): t.fit(1)
    assert not torch.is_autocast_enabled("cpu")


def test_rejects_other_dtypes():
    with pytest.raises(ValueError, match="bfloat16"): MixedPrecisionCB(torch.float32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_matches_plain_autocast_loop_on_cuda(make_trainer, make_model, make_dls, dtype):
    model, ref = make_model(), make_model().cuda()
    t = make_trainer([DeviceCB("cuda"), MixedPrecisionCB(dtype)], model=model)
    t.fit(2, lr=0.1)
    hand_loop(ref, make_dls(), dtype, n_epochs=2, device="cuda")
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)
    assert t.MixedPrecisionCB.device == "cuda"


def test_float16_with_a_scheduler_matches_hand_loop(make_trainer, make_model, make_dls):
    # torch's schedulers wrap opt.step too: the scaled step must survive that and still step once per batch.
    model, ref = make_model(), make_model()
    t = make_trainer([MixedPrecisionCB(torch.float16), OneCycleSchedulerCB()], model=model)
    t.fit(1, lr=0.1)
    opt, scaler = torch.optim.SGD(ref.parameters(), lr=0.1), torch.amp.GradScaler("cpu")
    dls = make_dls()
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=len(dls.train))
    for xb, yb in dls.train:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.cross_entropy(ref(xb), yb)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        sched.step()
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)


def test_float16_resume_keeps_the_loss_scale(make_trainer, make_model, tmp_path):
    from AIsaac.all import CheckpointCB, Callback

    class StopAt(Callback):
        def after_batch(self, trainer):
            if trainer.training and (trainer.epoch, trainer.batch_num) == (1, 4): raise KeyboardInterrupt

    # A scale of 2**24 overflows at first, so the scale changes during the fit and must be carried over.
    full = make_trainer([MixedPrecisionCB(torch.float16, init_scale=2.**24)], model=make_model())
    full.fit(2, lr=0.1)
    with pytest.raises(KeyboardInterrupt):
        make_trainer([MixedPrecisionCB(torch.float16, init_scale=2.**24)], model=make_model()).fit(
            2, lr=0.1, callbacks=[CheckpointCB(tmp_path, every_n_batches=2), StopAt()])
    resumed = make_trainer([MixedPrecisionCB(torch.float16, init_scale=2.**24)], model=make_model(seed=1))
    resumed.fit(2, lr=0.1, resume_from=tmp_path)
    assert resumed.MixedPrecisionCB.scaler.get_scale() == full.MixedPrecisionCB.scaler.get_scale() < 2.**24
    for p, q in zip(resumed.model.parameters(), full.model.parameters()): assert torch.equal(p, q)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_subclass_with_its_own_init_and_before_fit_matches_the_plain_loop(make_trainer, make_model, make_dls, dtype):
    seen = []

    class OwnSetupCB(MixedPrecisionCB):
        def __init__(self, dtype): self.dtype = dtype  # no super().__init__(): the class defaults
        def before_fit(self, trainer): seen.append(trainer.epoch)  # no super().before_fit(): set up at the first batch

    model, ref = make_model(), make_model()
    t = make_trainer([OwnSetupCB(dtype)], model=model)
    assert t.OwnSetupCB.claims == (('backward',) if dtype is torch.float16 else ())
    assert [m.__self__ for m in t.plan['backward']] == [t.OwnSetupCB if dtype is torch.float16 else t.BasicTrainCB]
    t.fit(2, lr=0.1)
    scaler = hand_loop(ref, make_dls(), dtype, n_epochs=2)
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)
    if dtype is torch.float16: assert t.OwnSetupCB.scaler.get_scale() == scaler.get_scale()
    assert seen == [0] and 'step' not in vars(t.opt) and not torch.is_autocast_enabled("cpu")
