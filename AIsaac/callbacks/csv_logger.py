"""`CSVLoggerCB`: one CSV row per epoch from `trainer.epoch_log` (epoch, train and valid loss, metrics)."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ..callback import Callback, Order, check_log_key, final_epoch_log


class CSVLoggerCB(Callback):
    '''Writes `trainer.epoch_log` as a CSV row at the end of each epoch; needs MetricsCB

    The file is rewritten at each fit, or added to when `append=True` (the header is written only to an empty file,
    and an existing header decides the columns). Rows are flushed as they are written. `state_dict` holds the file's
    text as of the checkpoint: a resumed fit rewrites the file from it and continues, so no row is missing or doubled.
    Takes no part in side runs (`lr_find`...).
    '''

    order = Order.LOGGER  # reads epoch_log once MetricsCB has filled it
    side_runs = False

    def __init__(self, path: str | os.PathLike = "history.csv", append: bool = False):
        self.path, self.append = Path(path), append
        self._file: Any = None
        self._writer: Any = None

    def before_fit(self, trainer):
        check_log_key(self, None, trainer)
        self._close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields = None
        if getattr(trainer, "resuming", False): return  # the file is rewritten from the checkpoint (load_state_dict)
        if self.append and self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="") as f: self._fields = next(csv.reader(f), None)
        self._file = open(self.path, "a" if self.append else "w", newline="")

    def cleanup_epoch(self, trainer):
        log = final_epoch_log(trainer)
        if log is None or self._file is None: return
        if self._writer is None:
            if self._fields is None:
                self._fields = list(log)
                csv.writer(self._file).writerow(self._fields)
            self._writer = csv.DictWriter(self._file, self._fields, extrasaction="ignore")
        self._writer.writerow(log)
        self._file.flush()

    def cleanup_fit(self, trainer): self._close()

    def state_dict(self) -> dict[str, Any]:
        if self._file is not None: self._file.flush()
        text = ""
        if self.path.exists():
            with open(self.path, newline="") as f: text = f.read()  # newline="": the \r\n row ends kept as written
        return {"text": text, "fields": self._fields}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._close()
        with open(self.path, "w", newline="") as f: f.write(state["text"])
        self._fields = state["fields"]
        self._file = open(self.path, "a", newline="")

    def _close(self) -> None:
        if self._file is not None: self._file.close()
        self._file, self._writer = None, None
