"""`BasicTrainCB`: the plain PyTorch training step, one phase per event."""
from __future__ import annotations

from ..callback import Callback


class BasicTrainCB(Callback):
    '''Callback for basic pytorch training loop'''

    def predict(self, trainer): trainer.preds = trainer.model(trainer.batch[0])
    def get_loss(self, trainer): trainer.loss = trainer.loss_func(trainer.preds, trainer.batch[1])
    def backward(self, trainer): trainer.loss.backward()
    def step(self, trainer): trainer.opt.step()
    def zero_grad(self, trainer): trainer.opt.zero_grad()
