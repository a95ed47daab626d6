"""`TensorBoardCB`: epoch numbers, per-batch training losses and lrs, and each fit's hyperparameters as TensorBoard
event files."""
from __future__ import annotations

import os
from typing import Any

from .logger import LoggerCB


class TensorBoardCB(LoggerCB):
    '''Writes TensorBoard scalars per epoch (`loss/train`, `loss/valid`, `metrics/<name>`, `records/lr`,
    `records/train_time`, ...), per training batch (`loss/train_batch`, `lr/train_batch`) and, at the end of each
    fit, its hyperparameters with its final numbers (`add_hparams`, in a `hparams_fit<n>` subfolder: the HPARAMS tab)

    Needs MetricsCB; see LoggerCB for what is logged and when (no host-device sync per batch). Steps keep counting
    across fits; each fit adds an event file to the same folder (a fit resumed from a checkpoint too, unless given
    another `log_dir`: the folder is part of `state_dict`). `log_dir=None` lets SummaryWriter choose
    `runs/<date>_<host>`; `hparams` are logged beside the fit's own; extra keyword arguments go to SummaryWriter.
    '''

    def __init__(self, log_dir: str | os.PathLike | None = None, hparams: dict[str, Any] | None = None,
                 log_batches: bool = True, **writer_kwargs: Any):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError("TensorBoardCB needs the tensorboard package: pip install tensorboard "
                              "(or pip install 'aisaac[tensorboard]').") from e
        super().__init__(hparams, log_batches)
        self._writer_cls, self.log_dir, self.writer_kwargs = SummaryWriter, log_dir, writer_kwargs
        self._given_dir = log_dir is not None
        self.writer = None

    def open(self, trainer):
        self.writer = self._writer_cls(log_dir=None if self.log_dir is None else str(self.log_dir), **self.writer_kwargs)
        self.log_dir = self.writer.log_dir  # later fits write to the same folder
        self._params: dict[str, Any] = {}

    def write_params(self, params):
        # add_hparams takes numbers, strings and bools; written at the end of the fit, with the fit's final numbers.
        self._params = {k.split("/", 1)[-1]: v if isinstance(v, (int, float, str, bool)) else str(v)
                        for k, v in params.items()}

    def write_scalars(self, values, step, per):
        for k, v in values.items(): self.writer.add_scalar(k, v, step)
        if per == "epoch": self.writer.flush()

    def state_dict(self) -> dict[str, Any]:
        """LoggerCB's counters and the folder: a fit resumed from a checkpoint writes to the same run's folder."""
        return {**super().state_dict(), "log_dir": None if self.log_dir is None else str(self.log_dir)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        # The folder the checkpoint's run wrote to, unless this callback was given one.
        if state.get("log_dir") is not None and not self._given_dir: self.log_dir = state["log_dir"]

    def close(self):
        if self._params and self.last_scalars:
            self.writer.add_hparams(self._params, {f"hparam/{k}": v for k, v in self.last_scalars.items()},
                                    run_name=f"hparams_fit{self.fits - 1}")
        # One event file per fit: TensorBoard reads every file in the folder, in order.
        self.writer.close()
        self.writer = None
