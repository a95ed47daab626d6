"""restoring(trainer): whatever the block does (fits, freezing, callbacks added, random draws, an error), the model's
weights and grads, the optimizer's state, the callbacks, the trainer and the random generators come back bit-exact."""
import copy
import random

import numpy as np
import pytest
import torch
from torch import nn

from AIsaac.all import BasicTrainCB, CSVLoggerCB, MetricsCB, ProgressCB, Trainer, restoring


def same(a, b):
    """Equal nested structures of tensors, numbers and containers (tensors with torch.equal: bit-exact)."""
    if isinstance(a, torch.Tensor): return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict): return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, np.ndarray): return np.array_equal(a, b)
    return a == b


def make(tiny_dls, *cbs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    return Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.Adam, model, [BasicTrainCB(), MetricsCB(), *cbs],
                   splitter=lambda m: [m[:3].parameters(), m[3].parameters()])  # body and head, for freeze_to


def leave_grads(t):
    """Gradients on the parameters, as a user's own backward leaves them, for the block to put back."""
    t.loss_func(t.model(torch.ones(4, 6)), torch.zeros(4, dtype=torch.long)).backward()


def state(t):
    return dict(model=copy.deepcopy(t.model.state_dict()), opt=copy.deepcopy(t.opt.state_dict()), opt_obj=t.opt,
                grads=[p.grad.clone() for p in t.model.parameters()],
                requires_grad=[p.requires_grad for p in t.model.parameters()],
                modes=[m.training for m in t.model.modules()], epoch_log=copy.deepcopy(t.epoch_log),
                losses=copy.deepcopy(t.MetricsCB.losses_epoch), lr=t.lr, epoch=t.epoch, cbs=list(t.cbs),
                names=list(t.named_callbacks), rng=(torch.get_rng_state(), random.getstate(), np.random.get_state()))


def draws():
    return torch.rand(3), random.random(), np.random.rand(2)


def check_all_back(t, before):
    after = state(t)
    for key in before:
        if key == "opt_obj": assert t.opt is before["opt_obj"]
        else: assert same(after[key], before[key]), key


def test_a_block_of_fits_and_changes_leaves_everything_bit_exact(tiny_dls):
    t = make(tiny_dls)
    t.fit(1, lr=1e-2)
    t.model.eval()  # a mode the block changes
    leave_grads(t)
    before = state(t)
    rng = before["rng"]
    with restoring(t) as same_trainer:
        assert same_trainer is t
        t.fit(2, lr=1.0, callbacks=[ProgressCB(bars=False)])
        t.freeze_to(1, train_norm=False)  # the body's parameters lose their grads and their Adam state
        assert not t.model[0].weight.requires_grad and t.model[0].weight not in t.opt.state
        t.add_callbacks(ProgressCB(bars=False))
        draws()
    check_all_back(t, before)
    # The generators are where they were: the next draws are those the saved states give.
    got = draws()
    torch.set_rng_state(rng[0]), random.setstate(rng[1]), np.random.set_state(rng[2])
    assert same(got, draws())


def test_it_puts_everything_back_after_an_error_too(tiny_dls):
    t = make(tiny_dls)
    t.fit(1, lr=1e-2)
    leave_grads(t)
    before = state(t)
    with pytest.raises(ZeroDivisionError):
        with restoring(t):
            t.fit(1, lr=1.0)
            1 / 0
    check_all_back(t, before)


def test_a_fit_after_the_block_is_the_fit_without_it(tiny_dls):
    a, b = make(tiny_dls), make(tiny_dls)
    torch.manual_seed(1)
    a.fit(1, lr=1e-2)
    with restoring(a): a.fit(2, lr=0.5)
    a.fit(1, lr=1e-2)
    torch.manual_seed(1)
    b.fit(1, lr=1e-2)
    b.fit(1, lr=1e-2)
    assert same(a.model.state_dict(), b.model.state_dict()) and same(a.opt.state_dict(), b.opt.state_dict())


def test_callbacks_that_take_no_part_in_side_runs_are_off_inside_and_back_after(tiny_dls, tmp_path):
    t = make(tiny_dls, CSVLoggerCB(tmp_path / "log.csv"))
    t.fit(1)
    written = (tmp_path / "log.csv").read_bytes()
    with restoring(t):
        assert "CSVLoggerCB" not in t.named_callbacks and "MetricsCB" in t.named_callbacks
        t.fit(2)
    assert (tmp_path / "log.csv").read_bytes() == written  # nothing on disk changed
    assert list(t.named_callbacks) == ["BasicTrainCB", "MetricsCB", "CSVLoggerCB"]
