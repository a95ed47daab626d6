"""LRFinderCB, the lr range test: the lr grows exponentially to end_lr, its losses are those of a plain PyTorch run,
it stops when the loss diverges; its suggestions and plot. (Trainer.lr_find, the search built on it, is tested in
tests/tools/test_lr_find.py.)"""
import matplotlib
matplotlib.use("Agg")
import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, LRFinderCB, Trainer


def test_grows_lr_exponentially_to_end_lr_and_records_the_losses_of_a_hand_run(make_trainer, make_model, make_dls):
    model, ref = make_model(), make_model()
    cb = LRFinderCB(end_lr=1e-1, num_it=6, max_mult=1e9)
    make_trainer([cb], model=model).fit(2, lr=1e-3)
    assert len(cb.lrs) == 6
    opt, losses = torch.optim.SGD(ref.parameters(), lr=1e-3), []
    expected = [1e-3 * 100 ** (i / 5) for i in range(6)]  # from 1e-3 to end_lr exactly
    for (xb, yb), lr in zip(list(make_dls().train)[:6], expected):
        for g in opt.param_groups: g['lr'] = lr
        loss = nn.functional.cross_entropy(ref(xb), yb)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert cb.lrs == pytest.approx(expected) and cb.mults == pytest.approx([lr / 1e-3 for lr in expected])
    assert cb.losses == pytest.approx(losses, rel=1e-6) and not cb.diverged


def test_multiplies_every_group_keeping_their_ratios(make_dls, make_model):
    model = make_model()
    seen = []

    class Groups:
        order = 99
        def before_batch(self, trainer): seen.append([g['lr'] for g in trainer.opt.param_groups])

    cb = LRFinderCB(end_lr=1., num_it=5, max_mult=1e9)
    t = Trainer(make_dls(), nn.CrossEntropyLoss(), torch.optim.SGD, model, [BasicTrainCB(), cb, Groups()],
                splitter=lambda m: [m[0].parameters(), m[2].parameters()])
    t.fit(1, lr=[1e-4, 1e-3])
    assert len(seen) == 5
    for (lo, hi), mult in zip(seen, cb.mults): assert (lo, hi) == pytest.approx((1e-4 * mult, 1e-3 * mult))
    assert cb.lrs[0] == pytest.approx(1e-3)  # the largest group's start, when fit's lr is not one number


def test_stops_when_the_loss_diverges(make_trainer):
    cb = LRFinderCB(end_lr=1e4, num_it=1000)
    t = make_trainer([cb])
    t.fit(100, lr=1e-4)
    assert cb.diverged and len(cb.lrs) < 1000
    assert cb.smooth_losses[-1] > 4 * min(cb.smooth_losses[:-1])


def test_skips_validation(make_trainer):
    class Phases:
        def before_fit(self, trainer): self.seen = set()
        def after_batch(self, trainer): self.seen.add(trainer.training)
    phases = Phases()
    make_trainer([LRFinderCB(end_lr=1e-5, num_it=1000), phases]).fit(2, lr=1e-6)
    assert phases.seen == {True}


def test_suggestions_and_plot(make_trainer):
    cb = LRFinderCB(end_lr=1e4, num_it=300)
    make_trainer([cb]).fit(100, lr=1e-6)
    s = cb.suggestions()
    assert min(cb.lrs) <= s['lr_steep'] <= max(cb.lrs) and s['lr_min'] < max(cb.lrs)
    fig = cb.plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == 'log' and len(ax.lines) == 4  # raw, smoothed, two suggestions
    assert list(ax.lines[0].get_xdata()) == cb.lrs


def test_bad_arguments(make_trainer):
    with pytest.raises(ValueError, match="num_it"): LRFinderCB(num_it=1)
    with pytest.raises(ValueError, match="max_mult"): LRFinderCB(max_mult=1.)
    with pytest.raises(Exception, match="end_lr"): make_trainer([LRFinderCB(end_lr=1e-3)]).fit(1, lr=1e-2)
