"""`StepWatch` (AIsaac/runtime/steps.py): whether `trainer.step` moved since the last look, in a real fit with
gradient accumulation counting only the real optimizer steps."""
import types

import torch
from torch import nn

from AIsaac.all import BasicTrainCB, GradAccumCB, Trainer
from AIsaac.runtime.steps import StepWatch


def test_the_first_look_takes_the_count_and_later_ones_say_whether_it_moved():
    t, watch = types.SimpleNamespace(step=5), StepWatch()
    assert [watch.moved(t), watch.moved(t)] == [False, False]
    t.step = 6
    assert [watch.moved(t), watch.moved(t)] == [True, False]
    t.step = 9  # several steps between two looks: one move
    assert watch.moved(t)
    watch.reset()
    t.step = 10
    assert not watch.moved(t) and watch.seen == 10  # after a reset (a new fit, a loaded checkpoint): counted again


class CountsSteps:
    """Counts, after each training batch, the batches at which the optimizer really stepped."""

    def __init__(self): self.watch, self.moves = StepWatch(), []
    def before_fit(self, trainer):
        self.watch.reset()
        self.watch.moved(trainer)
    def after_batch(self, trainer):
        if trainer.training and self.watch.moved(trainer): self.moves.append(trainer.batch_num)


def test_with_gradient_accumulation_it_moves_once_per_real_optimizer_step(tiny_dls, tiny_model):
    counter = CountsSteps()
    t = Trainer(tiny_dls, nn.CrossEntropyLoss(), torch.optim.SGD, tiny_model, [BasicTrainCB(), GradAccumCB(3), counter])
    t.fit(2, lr=0.1)  # 6 batches an epoch: a step after batches 2 and 5
    assert counter.moves == [2, 5, 2, 5] and t.step == 4
