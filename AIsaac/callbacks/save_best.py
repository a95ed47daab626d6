"""`SaveBestCB`: keeps the model weights of the best epoch, in memory or on disk, and restores them at the end."""
from __future__ import annotations

import os
from typing import Any

import torch

from .monitor import MonitorCB


class SaveBestCB(MonitorCB):
    '''Keeps the weights of the epoch with the best `epoch_log[monitor]` (see MonitorCB); restores them at the end of the fit

    With `path` (a file name) the weights are saved there with `torch.save` at each improvement; without it they are
    cloned in memory (on the model's device). `restore=True` loads them back into the model at the end of the
    fit, also when it was stopped early. `state_dict` holds the best value and the best weights (written back to
    `path` when a fit resumes), so a resumed fit keeps and restores the same epoch as the uninterrupted one.
    '''

    def __init__(self, monitor: str = 'valid', mode: str = 'auto', path: str | os.PathLike | None = None,
                 restore: bool = True, min_delta: float = 0.):
        super().__init__(monitor, mode, min_delta)
        self.path, self.restore = path, restore
        self.state: Any = None  # the best weights (in memory), or `path` once they are saved there

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

    def state_dict(self) -> dict[str, Any]:
        weights = self.state
        if self.path is not None and weights is not None:
            weights = torch.load(self.path, map_location='cpu', weights_only=True)
        return {**super().state_dict(), "weights": weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        weights = state["weights"]
        if weights is None or self.path is None: self.state = weights
        else:  # the file may have been overwritten after the checkpoint by an epoch the resumed fit redoes
            torch.save(weights, self.path)
            self.state = self.path
