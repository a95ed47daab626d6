"""`SaveBestCB`: keeps the model weights of the best epoch, in memory or on disk, and restores them at the end."""
from __future__ import annotations

import os
from typing import Any

import torch

from ..runtime.checkpoint import model_state, save_checkpoint, unwrap_model
from .monitor import MonitorCB


class SaveBestCB(MonitorCB):
    '''Keeps the weights of the epoch with the best `epoch_log[monitor]` (see MonitorCB); restores them at the end of the fit

    With `path` (a file name) the weights are saved there (a `torch.save` file, written atomically) at each
    improvement; without it they are cloned in memory (on the model's device). `restore=True` loads them back into
    the model at the end of the fit, also when it was stopped early. `state_dict` holds the best value and the best
    weights (written back to `path` when a fit resumes), so a resumed fit keeps and restores the same epoch as the
    uninterrupted one.

    With several processes they all take the same decisions (MonitorCB follows the main process's number); only the
    main process writes `path` (a sharded model's full state), the others keep their weights in memory.
    '''

    def __init__(self, monitor: str = 'valid', mode: str = 'auto', path: str | os.PathLike | None = None,
                 restore: bool = True, min_delta: float = 0.):
        super().__init__(monitor, mode, min_delta)
        self.path, self.restore = path, restore
        self.state: Any = None  # the best weights (in memory), or `path` once they are saved there

    _is_main, _single = True, True  # the main process (writes `path`); one process (keeps the weights there)

    def before_fit(self, trainer):
        super().before_fit(trainer)
        self.state = None
        self._is_main, self._single = trainer.is_main_process, trainer.num_processes == 1

    def on_value(self, trainer, value, improved):
        if not improved: return
        if self.path is not None:
            full = model_state(trainer.model)  # a collective for a sharded model: every process decided to be here
            # Atomic: a crash or a full disk while writing leaves the previous best as it was.
            if trainer.is_main_process: save_checkpoint(full, self.path)
        if self.path is None or trainer.num_processes > 1:
            # Each process's own (for a sharded model, its shard), so restoring needs no collective.
            self.state = {k: v.detach().clone() for k, v in unwrap_model(trainer.model).state_dict().items()}
        else: self.state = self.path

    def cleanup_fit(self, trainer):
        if not self.restore or self.state is None: return
        on_disk = isinstance(self.state, (str, os.PathLike))
        state = torch.load(self.state, map_location='cpu', weights_only=True) if on_disk else self.state
        unwrap_model(trainer.model).load_state_dict(state)  # copies into the existing tensors, whatever their device

    def state_dict(self) -> dict[str, Any]:
        weights = self.state
        if isinstance(weights, (str, os.PathLike)): weights = torch.load(weights, map_location='cpu', weights_only=True)
        elif weights is not None: weights = {k: v.detach().cpu() for k, v in weights.items()}
        return {**super().state_dict(), "weights": weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        weights = state["weights"]
        self.state = weights
        # The file may have been overwritten after the checkpoint by an epoch the resumed fit redoes: write it back
        # (the main process only; with several processes each keeps the weights in memory, as on_value does).
        if weights is not None and self.path is not None and self._is_main:
            save_checkpoint(weights, self.path)
            if self._single: self.state = self.path
