"""MomentumTrainCB: gradients decay by `momentum` instead of being zeroed, as a hand loop does."""
import copy

import torch
from torch import nn

from AIsaac.all import MomentumTrainCB, Trainer


def hand_momentum(model, dls, momentum, epochs=2, lr=0.1):
    """Plain SGD whose gradients are scaled by `momentum` after each step instead of zeroed."""
    opt = torch.optim.SGD(model.parameters(), lr)
    for _ in range(epochs):
        for xb, yb in dls.train:
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            with torch.no_grad():
                for p in model.parameters(): p.grad *= momentum


def test_matches_hand_written_gradient_momentum(tiny_dls, tiny_model):
    ours, ref = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, ours, callbacks=[MomentumTrainCB(0.8)]).fit(2, lr=0.1)
    hand_momentum(ref, tiny_dls, 0.8)
    for a, b in zip(ours.parameters(), ref.parameters()): torch.testing.assert_close(a, b)


def test_is_a_basic_train_cb_variant():
    from AIsaac.all import BasicTrainCB
    cb = MomentumTrainCB(0.5)
    assert isinstance(cb, BasicTrainCB) and cb.momentum == 0.5


def test_a_subclass_overriding_zero_grad_and_before_fit_matches_its_hand_loop(tiny_dls, tiny_model):
    class HalfMomentumCB(MomentumTrainCB):
        def __init__(self): pass  # not even MomentumTrainCB's __init__
        momentum = 0.5
        def before_fit(self, trainer): self.calls = 0
        def zero_grad(self, trainer):
            self.calls += 1
            super().zero_grad(trainer)

    ours, ref = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    trainer = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, ours, callbacks=[HalfMomentumCB()])
    trainer.fit(2, lr=0.1)
    hand_momentum(ref, tiny_dls, 0.5)
    for a, b in zip(ours.parameters(), ref.parameters()): torch.testing.assert_close(a, b)
    assert trainer.HalfMomentumCB.calls == 2 * len(tiny_dls.train)
