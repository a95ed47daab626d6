"""`MomentumTrainCB`: the basic step, but gradients decay by `momentum` instead of being zeroed."""
from __future__ import annotations

import torch

from .basic_train import BasicTrainCB


class MomentumTrainCB(BasicTrainCB):
    '''BasicTrainCB whose zero_grad keeps a `momentum` fraction of the gradients (a running sum of past ones)'''

    def __init__(self, momentum: float): self.momentum = momentum

    def zero_grad(self, trainer):
        '''Multiply grads by momentum (instead of zero)'''
        with torch.no_grad():
            for p in trainer.model.parameters():
                if p.grad is not None: p.grad *= self.momentum
