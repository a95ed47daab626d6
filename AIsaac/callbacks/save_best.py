"""`SaveBestCB`: keeps the model weights of the best epoch, in memory or on disk, and restores them at the end."""
from __future__ import annotations

import os
from typing import Any

import torch

from ..runtime.checkpoint_file import SAVE_FORMAT, save_checkpoint
from ..runtime.model_state import model_state, saving_model
from ..runtime.messages import inform
from .monitor import MonitorCB


class SaveBestCB(MonitorCB):
    '''Keeps the weights of the epoch with the best `epoch_log[monitor]` (see MonitorCB); restores them at the end of the fit

    With `path` (a file name) the weights are saved there at each improvement, as `trainer.save` writes them (so
    `trainer.load(path)` reads them; the file's `best` entry holds the monitor, its value, the epoch and the step);
    without it they are cloned in memory (on the model's device). `restore=True` loads them back at the end of the
    fit, also when it was stopped early, and says which epoch and step it restored and what they scored (on the
    "AIsaac" logger): `trainer.epoch_log` and the table still describe the last epoch. The weights are those of
    `trainer.model_to_save` when a callback chose it (EMACB(use_for_saving=True): the averaged ones, restored into
    the averaged copy), else the model's. `best_step` is `trainer.step` at the best epoch. `state_dict` holds the best
    value and the best weights (written back to `path` when a fit resumes), so a resumed fit keeps and restores the
    same epoch as the uninterrupted one.

    With several processes they all take the same decisions (MonitorCB follows the main process's number); only the
    main process writes `path` (a sharded model's full state), the others keep their weights in memory.
    '''

    def __init__(self, monitor: str = 'valid', mode: str = 'auto', path: str | os.PathLike | None = None,
                 restore: bool = True, min_delta: float = 0.):
        super().__init__(monitor, mode, min_delta)
        self.path, self.restore = path, restore
        self.state: Any = None  # the best weights (in memory), or `path` once they are saved there
        self.best_step: int | None = None

    _is_main, _single = True, True  # the main process (writes `path`); one process (keeps the weights there)

    def before_fit(self, trainer):
        super().before_fit(trainer)
        self.state, self.best_step = None, None
        self._is_main, self._single = trainer.is_main_process, trainer.num_processes == 1

    def _write(self, path: str | os.PathLike, weights: dict[str, Any]) -> None:
        best = {"monitor": self.monitor, "value": self.best, "epoch": self.best_epoch, "step": self.best_step}
        save_checkpoint({"format": SAVE_FORMAT, "model": weights, "opt": None, "best": best}, path)

    def on_value(self, trainer, value, improved):
        if not improved: return
        self.best_step = trainer.step
        module = saving_model(trainer)
        if self.path is not None:
            full = model_state(module)  # a collective for a sharded model: every process decided to be here
            if trainer.is_main_process: self._write(self.path, full)
        if self.path is None or trainer.num_processes > 1:
            # Each process's own (for a sharded model, its shard), so restoring needs no collective.
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else: self.state = self.path

    def _weights(self) -> dict[str, Any] | None:
        if isinstance(self.state, (str, os.PathLike)):
            return torch.load(self.state, map_location='cpu', weights_only=True)["model"]
        return self.state

    def cleanup_fit(self, trainer):
        if not self.restore or self.state is None: return
        saving_model(trainer).load_state_dict(self._weights())  # copies into the existing tensors, whatever their device
        step = f" (step {self.best_step})" if self.best_step is not None else ""
        inform(trainer, f"SaveBestCB: restored the weights of epoch {self.best_epoch}{step}, the best '{self.monitor}': "
                        f"{self.best:.6g}; trainer.epoch_log and the table still show the last epoch.")

    def state_dict(self) -> dict[str, Any]:
        weights = self._weights()
        if weights is not None: weights = {k: v.detach().cpu() for k, v in weights.items()}
        return {**super().state_dict(), "weights": weights, "best_step": self.best_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        weights, self.best_step = state["weights"], state.get("best_step")
        self.state = weights
        # The file may have been overwritten after the checkpoint by an epoch the resumed fit redoes: write it back
        # (the main process only; with several processes each keeps the weights in memory, as on_value does).
        if weights is not None and self.path is not None and self._is_main:
            self._write(self.path, weights)
            if self._single: self.state = self.path
