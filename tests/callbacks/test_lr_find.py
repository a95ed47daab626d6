import copy
from functools import partial

import matplotlib
matplotlib.use("Agg")
import torch
from torch import nn
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

from AIsaac.all import (ActivationStatsCB, BasicTrainCB, BatchSchedulerCB, DataLoaders, MetricsCB, ProgressCB,
                        Trainer, lr_find)


def make(seed=0):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long()
    ds = TensorDataset(x, y)
    dls = DataLoaders(DataLoader(ds, batch_size=8, shuffle=True), DataLoader(ds, batch_size=16))
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    cbs = [BasicTrainCB(), MetricsCB(), ActivationStatsCB(), ProgressCB(bars=False),
           BatchSchedulerCB(partial(StepLR, step_size=5, gamma=0.9))]
    return Trainer(dls, nn.CrossEntropyLoss(), torch.optim.Adam, model, cbs)


def same(a, b):
    """Equal nested structures of tensors, numbers, strings and containers (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor): return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict): return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def test_leaves_model_optimizer_and_callbacks_as_they_were():
    torch.manual_seed(0)
    t = make()
    t.fit(1, lr=1e-2)
    t.model.train()  # a mode the search would change
    before = dict(model=copy.deepcopy(t.model.state_dict()), opt=copy.deepcopy(t.opt.state_dict()), opt_obj=t.opt,
                  grads=[None if p.grad is None else p.grad.clone() for p in t.model.parameters()],
                  losses_batch=copy.deepcopy(t.MetricsCB.losses_batch),
                  losses_epoch=copy.deepcopy(t.MetricsCB.losses_epoch),
                  stats=[s.clone() for s in t.ActivationStatsCB.stats],
                  sched=copy.deepcopy(t.BatchSchedulerCB.scheduler.state_dict()),
                  rows=copy.deepcopy(t.ProgressCB._rows), lr=t.lr, epoch=t.epoch, cbs=list(t.cbs),
                  plan=dict(t.plan))
    res = t.lr_find(max_iter=30)
    assert res.lrs[1] / res.lrs[0] == 1.3 and len(res.lrs) <= 30
    assert min(res.lrs) <= res.suggestion <= max(res.lrs)
    assert res.fig.axes[0].get_xscale() == 'log'
    assert same(t.model.state_dict(), before['model']) and t.model.training
    assert t.opt is before['opt_obj'] and same(t.opt.state_dict(), before['opt'])
    assert same([p.grad for p in t.model.parameters()], before['grads'])
    assert same(t.MetricsCB.losses_batch, before['losses_batch'])
    assert same(t.MetricsCB.losses_epoch, before['losses_epoch'])
    assert same(t.ActivationStatsCB.stats, before["stats"]) and all(h.removed for h in t.ActivationStatsCB)
    assert same(t.BatchSchedulerCB.scheduler.state_dict(), before['sched'])
    assert t.ProgressCB._rows == before['rows'] and (t.lr, t.epoch) == (before['lr'], before['epoch'])
    assert t.cbs == before['cbs'] and dict(t.plan) == before["plan"]


def test_a_fit_after_the_search_is_the_fit_without_it():
    torch.manual_seed(0)
    a = make()
    a.fit(1, lr=1e-2)
    a.lr_find(max_iter=20, show_plot=False)
    a.fit(1, lr=1e-2)
    torch.manual_seed(0)
    b = make()
    b.fit(1, lr=1e-2)
    b.fit(1, lr=1e-2)
    assert same(a.model.state_dict(), b.model.state_dict())


def test_is_a_trainer_method():
    assert Trainer.lr_find is lr_find
