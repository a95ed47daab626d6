import pytest
import torch
from torch import nn
from torch.testing import assert_close

from AIsaac.all import GradAccumCB, GradClipCB, MixedPrecisionCB


def big_batch_loop(model, dls, group_sizes, opt_func, lr, n_epochs=1):
    """Plain PyTorch: one step per group of consecutive small batches, taken as one big batch."""
    opt = opt_func(model.parameters(), lr=lr)
    for _ in range(n_epochs):
        batches = list(dls.train)
        i = 0
        for n in group_sizes:
            xb, yb = (torch.cat(t) for t in zip(*batches[i:i + n]))
            i += n
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            opt.zero_grad()


@pytest.mark.parametrize("opt_func", [torch.optim.SGD, torch.optim.Adam])
def test_n_batches_equal_one_big_batch(make_trainer, make_model, make_dls, opt_func):
    model, ref = make_model(), make_model()
    t = make_trainer([GradAccumCB(4)], model=model, opt_func=opt_func)
    t.fit(2, lr=0.01)
    big_batch_loop(ref, make_dls(), [4, 4], opt_func, 0.01, n_epochs=2)  # 8 batches of 8 -> 2 batches of 32
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)
    # metrics see the true per-batch loss, not a divided one
    assert t.MetricsCB.losses_epoch[0]['train'] > 0.5


def test_partial_group_steps_at_epoch_end(make_trainer, make_model, make_dls):
    model, ref = make_model(), make_model()
    make_trainer([GradAccumCB(3)], model=model).fit(1, lr=0.1)
    big_batch_loop(ref, make_dls(), [3, 3, 2], torch.optim.SGD, 0.1)
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)


def test_steps_only_on_the_boundary(make_trainer):
    steps = []
    t = make_trainer([GradAccumCB(4)])
    t.opt_func = lambda params, lr: _counting(torch.optim.SGD(params, lr), steps)
    t.fit(1)
    assert len(steps) == 2


def _counting(opt, steps):
    opt.register_step_post_hook(lambda *a: steps.append(1))
    return opt


def test_with_float16_and_clipping_matches_hand_loop(make_trainer, make_model, make_dls):
    # The composition: scaled backward per batch; at the boundary average, unscale, clip, step, update the scale.
    model, ref = make_model(), make_model()
    t = make_trainer([GradAccumCB(4), MixedPrecisionCB(torch.float16), GradClipCB(0.05)], model=model)
    t.fit(1, lr=0.1)
    opt, scaler = torch.optim.SGD(ref.parameters(), lr=0.1), torch.amp.GradScaler("cpu")
    for i, (xb, yb) in enumerate(make_dls().train):
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.cross_entropy(ref(xb), yb)
        scaler.scale(loss / 4).backward()
        if i % 4 == 3:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(ref.parameters(), 0.05)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
    for p, q in zip(model.parameters(), ref.parameters()): assert_close(p, q)


def test_rejects_bad_n():
    with pytest.raises(ValueError, match="whole number"): GradAccumCB(0)
