import matplotlib
matplotlib.use("Agg")
import pytest
import torch
from torch import nn

from AIsaac.all import LRFinderCB


def test_grows_lr_and_records_the_losses_of_a_hand_run(make_trainer, make_model, make_dls):
    model, ref = make_model(), make_model()
    cb = LRFinderCB(lr_mult=1.5, max_iter=6)
    make_trainer([cb], model=model).fit(2, lr=1e-3)
    assert len(cb.lrs) == 6
    opt, lr, losses = torch.optim.SGD(ref.parameters(), lr=1e-3), 1e-3, []
    for xb, yb in list(make_dls().train)[:6]:
        loss = nn.functional.cross_entropy(ref(xb), yb)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
        for g in opt.param_groups: g['lr'] *= 1.5
    assert cb.lrs == pytest.approx([1e-3 * 1.5 ** i for i in range(6)])
    assert cb.losses == pytest.approx(losses, rel=1e-6)


def test_stops_when_the_loss_diverges(make_trainer):
    cb = LRFinderCB(lr_mult=2., max_iter=1000)
    t = make_trainer([cb])
    t.fit(100, lr=1e-4)
    assert len(cb.lrs) < 100 * len(t.dls.train)
    assert cb.smooth_losses[-1] > 3 * min(cb.smooth_losses[:-1])


def test_skips_validation(make_trainer):
    class Phases:
        def before_fit(self, trainer): self.seen = set()
        def after_batch(self, trainer): self.seen.add(trainer.training)
    phases = Phases()
    make_trainer([LRFinderCB(max_iter=1000), phases]).fit(2, lr=1e-6)
    assert phases.seen == {True}


def test_suggestions_and_plot(make_trainer):
    cb = LRFinderCB(lr_mult=1.3, max_iter=1000)
    make_trainer([cb]).fit(100, lr=1e-6)
    s = cb.suggestions()
    assert min(cb.lrs) <= s['lr_steep'] <= max(cb.lrs) and s['lr_min'] < max(cb.lrs)
    fig = cb.plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == 'log' and len(ax.lines) == 4  # raw, smoothed, two suggestions
    assert list(ax.lines[0].get_xdata()) == cb.lrs


def test_bad_arguments():
    with pytest.raises(ValueError, match="lr_mult"): LRFinderCB(lr_mult=1.)
