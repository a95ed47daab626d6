"""`SaveBestCB`: keeps the model weights of the best epoch, in memory or on disk, and restores them at the end."""
from __future__ import annotations

import os

import torch

from .monitor import MonitorCB


class SaveBestCB(MonitorCB):
    '''Keeps the weights of the epoch with the best `epoch_log[monitor]` (see MonitorCB); restores them at the end of the fit

    With `path` (a file name) the weights are saved there with `torch.save` at each improvement; without it they are
    cloned in memory (on the model's device). `restore=True` loads them back into the model at the end of the
    fit, also when it was stopped early.
    '''

    def __init__(self, monitor: str = 'valid', mode: str = 'min', path: str | os.PathLike | None = None,
                 restore: bool = True, min_delta: float = 0.):
        super().__init__(monitor, mode, min_delta)
        self.path, self.restore, self.state = path, restore, None

    def before_fit(self, trainer):
        super().before_fit(trainer)
        self.state = None

    @staticmethod
    def _module(trainer) -> torch.nn.Module:
        return getattr(trainer.model, '_orig_mod', trainer.model)  # the module under a torch.compile wrapper

    def on_value(self, trainer, value, improved):
        if not improved: return
        state = {k: v.detach().clone() for k, v in self._module(trainer).state_dict().items()}
        if self.path is None: self.state = state
        else:
            torch.save(state, self.path)
            self.state = self.path

    def cleanup_fit(self, trainer):
        if not self.restore or self.state is None: return
        model = self._module(trainer)
        state = self.state if self.path is None else torch.load(self.path, map_location='cpu', weights_only=True)
        model.load_state_dict(state)  # copies into the existing tensors, whatever their device
