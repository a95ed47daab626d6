"""`TensorBoardCB`: epoch numbers and per-batch training losses as TensorBoard event files."""
from __future__ import annotations

import os
from typing import Any

from ..callback import Callback, Order, check_log_key, final_epoch_log


class TensorBoardCB(Callback):
    '''Writes TensorBoard scalars: `loss/train`, `loss/valid` and `metrics/<name>` per epoch, `loss/train_batch` per batch

    Needs MetricsCB; everything is written at the end of each epoch from MetricsCB's records (already on the CPU),
    so logging adds no host-device sync per batch. Steps keep counting across fits (epochs and training batches).
    `log_dir=None` lets SummaryWriter choose `runs/<date>_<host>`; extra keyword arguments go to SummaryWriter.
    '''

    order = Order.LOGGER  # reads epoch_log once MetricsCB has filled it
    side_runs = False  # writes files: takes no part in lr_find and the other side runs

    def __init__(self, log_dir: str | os.PathLike | None = None, **writer_kwargs: Any):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ImportError("TensorBoardCB needs the tensorboard package: pip install tensorboard "
                              "(or pip install 'aisaac[tensorboard]').") from e
        self._writer_cls, self.log_dir, self.writer_kwargs = SummaryWriter, log_dir, writer_kwargs
        self.writer = None
        self.epochs_logged, self.batches_logged = 0, 0

    def before_fit(self, trainer):
        check_log_key(self, None, trainer)
        self.writer = self._writer_cls(log_dir=None if self.log_dir is None else str(self.log_dir), **self.writer_kwargs)
        self.log_dir = self.writer.log_dir  # later fits write to the same folder
        self._metrics_cb = getattr(trainer, "MetricsCB", None)
        self._seen = len(self._metrics_cb.losses_batch) if self._metrics_cb is not None else 0

    def cleanup_epoch(self, trainer):
        log = final_epoch_log(trainer)
        if log is None or self.writer is None: return
        if self._metrics_cb is not None:
            for rec in self._metrics_cb.losses_batch[self._seen:]:
                if rec["training"]:
                    self.writer.add_scalar("loss/train_batch", rec["loss"], self.batches_logged)
                    self.batches_logged += 1
            self._seen = len(self._metrics_cb.losses_batch)
        for k, v in log.items():
            if k == "epoch" or not isinstance(v, (int, float)): continue
            self.writer.add_scalar(f"loss/{k}" if k in ("train", "valid") else f"metrics/{k}", v, self.epochs_logged)
        self.epochs_logged += 1
        self.writer.flush()

    def state_dict(self) -> dict[str, Any]:
        """The step counters and the log folder: a resumed fit continues the same curves at the same steps."""
        return {"epochs_logged": self.epochs_logged, "batches_logged": self.batches_logged,
                "seen": self._seen, "log_dir": None if self.log_dir is None else str(self.log_dir)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs_logged, self.batches_logged = state["epochs_logged"], state["batches_logged"]
        self._seen = state["seen"]

    def cleanup_fit(self, trainer):
        # One event file per fit: TensorBoard reads every file in the folder, in order.
        if self.writer is not None: self.writer.close()
        self.writer = None
