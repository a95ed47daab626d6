"""`CSVLoggerCB`: one CSV row per epoch from `trainer.epoch_log` (epoch, losses, metrics, lr, momentum, times)."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ..callback import Callback, Order, check_log_key, final_epoch_log
from ..runtime.messages import inform


class CSVLoggerCB(Callback):
    '''Writes `trainer.epoch_log` as a CSV row at the end of each epoch; needs MetricsCB

    Epochs keep counting across fits, as TensorBoard's steps do: the `epoch` column is the fit's epoch counted after
    the epochs this file had logged before it, so no two rows share one. The first fit starts a new file, unless
    `append=True`, which continues an existing file after its last epoch; a history already at `path` is then kept
    beside it as `<name>.1.csv` (`.2`, ... when taken), with a message. Later fits of the same callback always add
    to it. The header is written only to an empty file, and an existing header decides the columns. Rows are flushed
    as written. With several processes only the main process writes.
    `state_dict` holds the file's text as of the checkpoint: a resumed fit rewrites the file from it and continues, so
    no row is missing or doubled. Takes no part in side runs (`lr_find`...).
    '''

    order = Order.LOGGER  # reads epoch_log once MetricsCB has filled it
    side_runs = False

    def __init__(self, path: str | os.PathLike = "history.csv", append: bool = False):
        self.path, self.append = Path(path), append
        self._file: Any = None
        self._writer: Any = None
        self._writes = True  # whether this process writes the file (the main process only)
        self.epochs_logged: int | None = None  # the next epoch number of the file; None until the first fit opens it
        self._base = 0  # the epoch number the file gives this fit's epoch 0

    def before_fit(self, trainer):
        check_log_key(self, None, trainer)
        self._close()
        self._writes = trainer.is_main_process
        if not self._writes: return  # with several processes, the main one writes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields = None
        if trainer.resuming: return  # the file is rewritten from the checkpoint (load_state_dict)
        keep = (self.append or self.epochs_logged is not None) and self.path.exists() and self.path.stat().st_size
        if keep:
            with open(self.path, newline="") as f: rows = list(csv.reader(f))
            self._fields = rows[0] if rows else None
            self.epochs_logged = self._next_epoch(rows)
        else:
            if self.path.exists() and self.path.stat().st_size: self._set_aside(trainer)
            self.epochs_logged = 0
        self._base = self.epochs_logged
        self._file = open(self.path, "a" if keep else "w", newline="")

    def _set_aside(self, trainer: Any) -> None:
        """Rename the history already at `path` to the first free `<name>.<n><suffix>`, saying so: never lost."""
        n = 1
        while (aside := self.path.with_name(f"{self.path.stem}.{n}{self.path.suffix}")).exists(): n += 1
        os.replace(self.path, aside)
        inform(trainer, f"CSVLoggerCB: {self.path} already held a history; kept it as {aside} and started a new "
                        f"file. Pass CSVLoggerCB({str(self.path)!r}, append=True) to continue a history instead.")

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
        # The fit's epoch after the epochs the file held when it started (an epoch with a partial phase has no row).
        self._writer.writerow({**log, "epoch": self._base + trainer.epoch})
        self.epochs_logged = self._base + trainer.epoch + 1
        self._file.flush()

    def cleanup_fit(self, trainer): self._close()

    def state_dict(self) -> dict[str, Any]:
        if self._file is not None: self._file.flush()
        text = ""
        if self.path.exists():
            with open(self.path, newline="") as f: text = f.read()  # newline="": the \r\n row ends kept as written
        return {"text": text, "fields": self._fields, "epochs_logged": self.epochs_logged, "base": self._base}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._close()
        self._fields, self.epochs_logged = state["fields"], state.get("epochs_logged")
        if self.epochs_logged is None: self.epochs_logged = max(len(state["text"].splitlines()) - 1, 0)
        self._base = state.get("base", 0)
        if not self._writes: return  # with several processes, the main one writes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f: f.write(state["text"])
        self._file = open(self.path, "a", newline="")

    def _close(self) -> None:
        if self._file is not None: self._file.close()
        self._file, self._writer = None, None
