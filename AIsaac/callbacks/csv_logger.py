"""`CSVLoggerCB`: one CSV row per epoch from `trainer.epoch_log` (epoch, losses, metrics, lr, momentum, times)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from ..callback import Callback, Order, final_epoch_log


class CSVLoggerCB(Callback):
    '''Writes `trainer.epoch_log` as a CSV row at the end of each epoch; needs MetricsCB

    Epochs keep counting across fits, as TensorBoard's steps do: the `epoch` column is the number of epochs this file
    had logged before, so no two rows share one. The first fit rewrites the file, unless `append=True`, which
    continues an existing file after its last epoch; later fits of the same callback always add to it. The header
    is written only to an empty file, and an existing header decides the columns. Rows are flushed as written.
    With several processes only the main process writes.
    '''

    order = Order.LOGGER  # reads epoch_log once MetricsCB has filled it

    def __init__(self, path: str | os.PathLike = "history.csv", append: bool = False):
        self.path, self.append = Path(path), append
        self._file, self._writer = None, None
        self.epochs_logged: int | None = None  # rows in the file; None until the first fit opens it

    def before_fit(self, trainer):
        self._close()
        if not trainer.is_main_process: return  # with several processes, the main one writes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields = None
        keep = (self.append or self.epochs_logged is not None) and self.path.exists() and self.path.stat().st_size
        if keep:
            with open(self.path, newline="") as f: rows = list(csv.reader(f))
            self._fields = rows[0] if rows else None
            self.epochs_logged = self._next_epoch(rows)
        else: self.epochs_logged = 0
        self._file = open(self.path, "a" if keep else "w", newline="")

    @staticmethod
    def _next_epoch(rows: list[list[str]]) -> int:
        # After the last epoch number written (a file from elsewhere without one: after its number of rows).
        col = rows[0].index("epoch") if rows and "epoch" in rows[0] else None
        if col is None or len(rows) < 2: return max(len(rows) - 1, 0)
        try: return int(rows[-1][col]) + 1
        except (ValueError, IndexError): return len(rows) - 1

    def cleanup_epoch(self, trainer):
        log = final_epoch_log(trainer)
        if log is None or self._file is None: return
        if self._writer is None:
            if self._fields is None:
                self._fields = list(log)
                csv.writer(self._file).writerow(self._fields)
            self._writer = csv.DictWriter(self._file, self._fields, extrasaction="ignore")
        self._writer.writerow({**log, "epoch": self.epochs_logged})
        self.epochs_logged += 1
        self._file.flush()

    def cleanup_fit(self, trainer): self._close()

    def _close(self) -> None:
        if self._file is not None: self._file.close()
        self._file, self._writer = None, None
