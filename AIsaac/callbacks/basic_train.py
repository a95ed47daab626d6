"""`BasicTrainCB`: the plain PyTorch training step, one phase per event."""
from __future__ import annotations

from ..callback import Callback
from ..checks import check_inputs, check_targets


class BasicTrainCB(Callback):
    '''Callback for basic pytorch training loop'''

    checked = False  # the first batch of each fit is checked for form, device and labels (see AIsaac.checks)

    def before_fit(self, trainer): self.checked = False

    def predict(self, trainer):
        if not self.checked: check_inputs(trainer)
        trainer.preds = trainer.model(trainer.batch[0])

    def get_loss(self, trainer):
        if not self.checked:
            check_targets(trainer)
            self.checked = True
        trainer.loss = trainer.loss_func(trainer.preds, trainer.batch[1])

    def backward(self, trainer): trainer.loss.backward()
    def step(self, trainer): trainer.opt.step()
    def zero_grad(self, trainer): trainer.opt.zero_grad()
