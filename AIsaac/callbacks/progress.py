"""`ProgressCB`: progress bars over epochs and batches, and the epoch table."""
from __future__ import annotations

import sys
import time
from typing import Any

from ..callback import Callback
from ..order import Order
from ..records import final_epoch_log, is_record_key
from ..runtime.batch import loader_length
from ..display.html_bar import HTMLBar, show_html
from ..display.notebook import in_notebook
from ..display.tables import html_table, text_row
from ..runtime.messages import inform



class ProgressCB(Callback):
    '''Progress bars (epochs, batches) and one table row per epoch: epoch, train and valid loss, metrics

    Bars go to stderr and only when it is a terminal, so logs get no carriage returns. In a notebook the bars and
    the table are HTML outputs redrawn in place. The current loss is read from the device at most every `refresh`
    seconds. The table shows the epoch, losses and metrics; the records (lr, momentum, times) stay in `epoch_log`.
    When output is piped (no bars, not a notebook) a heartbeat line goes to the "AIsaac" logger (stderr unless logging
    is configured) at most every `heartbeat` seconds (epoch, phase, batch, batches per second), so a long job shows it
    is alive; `heartbeat=None` turns it off.
    '''

    order = Order.DISPLAY  # shows epoch_log once MetricsCB (and the loggers) are done with the epoch
    side_runs = False  # the epoch table belongs to real fits, not to lr_find and the other side runs

    clock = staticmethod(time.monotonic)  # what the refresh and the heartbeat are timed by (a test can replace it)

    def __init__(self, refresh: float = 0.5, bars: bool | None = None, heartbeat: float | None = 30.):
        if heartbeat is not None and not heartbeat > 0:
            raise ValueError(f"heartbeat is a number of seconds > 0, or None for no heartbeat; got {heartbeat!r}.")
        self.refresh, self.bars, self.heartbeat = refresh, bars, heartbeat
        self.epoch_bar = self.batch_bar = None

    def before_fit(self, trainer):
        # Plain tqdm: tqdm.auto would import ipywidgets' bar (and warn when it is missing) even where the bar is HTML.
        from tqdm import tqdm
        self._notebook = in_notebook()
        # With several processes only the main one shows anything (trainer state, see AIsaac/runtime/distributed.py).
        self._main = trainer.is_main_process
        show = self._main and (self.bars if self.bars is not None else (self._notebook or sys.stderr.isatty()))
        # In a notebook: HTML bars, which static copies of the notebook show as they were last drawn.
        self._tqdm = HTMLBar if self._notebook else tqdm
        self._show = show
        self._beat = self._main and not show and not self._notebook and self.heartbeat is not None
        self._next_beat = self.clock() + (self.heartbeat or 0.)  # when the next heartbeat is due: read at every batch
        self.epoch_bar = self._tqdm(total=trainer.n_epochs, desc="epoch", disable=not show, file=sys.stderr,
                                    dynamic_ncols=True)
        self.batch_bar, self._header, self._rows, self._handle = None, None, [], None
        self._bar_place = {"handle": None} if self._notebook else {}  # every phase's bar in one notebook output

    def before_epoch(self, trainer):
        total = loader_length(trainer.dl)  # None for a stream: the bar counts batches and shows their rate
        self.batch_bar = self._tqdm(total=total, desc="train" if trainer.training else "valid", leave=False,
                                    disable=not self._show, file=sys.stderr, dynamic_ncols=True, **self._bar_place)
        self._last = self._phase_start = self.clock()
        self._n_epochs, self._total = trainer.n_epochs, total

    def after_batch(self, trainer):
        if not self._show:
            if self._beat and self.clock() >= self._next_beat: self._heartbeat(trainer)
            return
        self.batch_bar.update(1)
        now = self.clock()
        if now - self._last >= self.refresh:  # a host-device sync, so only a few times a second
            self._last = now
            self.batch_bar.set_postfix(loss=f"{trainer.loss.detach().item():.4f}")

    def _heartbeat(self, trainer) -> None:
        now = self.clock()  # a host clock read: no device sync
        if now < self._next_beat: return
        self._next_beat = now + (self.heartbeat or 0.)
        done, total = trainer.batch_num + 1, self._total
        rate = done / max(now - self._phase_start, 1e-9)
        of = f"/{self._n_epochs}" if self._n_epochs is not None else ""
        inform(trainer, f"epoch {trainer.epoch + 1}{of}, {'train' if trainer.training else 'valid'} batch "
                        f"{done}{f'/{total}' if total is not None else ''}, {rate:.1f} batches/s")

    def cleanup_epoch(self, trainer):
        if self.batch_bar is not None:
            self.batch_bar.close()
            if self._bar_place: self._bar_place["handle"] = self.batch_bar.handle
        self.batch_bar = None
        log = final_epoch_log(trainer)
        if log is not None:
            self._show_row(log)
            self.epoch_bar.update(1)

    def _show_row(self, log: dict) -> None:
        if self._header is None:
            self._header = [k for k in log if not is_record_key(k)]
            self._widths = [max(len(k), 8) for k in self._header]
        values = [log.get(k, "") for k in self._header]
        self._rows.append(values)
        if not self._main: return
        if self._notebook: return self._show_html()
        if self._header is not None and len(self._rows) == 1:
            self._tqdm.write(text_row(self._header, self._widths), file=sys.stdout)
        self._tqdm.write(text_row(values, self._widths), file=sys.stdout)

    def _show_html(self) -> None:
        table = html_table(self._header, self._rows)
        # The same table as the terminal prints it, for readers that do not render HTML.
        plain = "\n".join(text_row(r, self._widths) for r in (self._header, *self._rows))
        self._handle = show_html(table, plain, self._handle)

    def state_dict(self) -> dict[str, Any]:
        """The epoch table so far (a resumed fit shows it again and continues it)."""
        return {"header": self._header, "rows": [list(r) for r in self._rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._header, self._rows = state["header"], []
        if self._header is not None: self._widths = [max(len(k), 8) for k in self._header]
        for row in state["rows"]: self._show_row(dict(zip(self._header, row)))
        if self.epoch_bar is not None: self.epoch_bar.update(len(self._rows))

    def cleanup_fit(self, trainer):
        for bar in (self.batch_bar, self.epoch_bar):  # None when an earlier before_fit failed
            if bar is not None: bar.close()
        self.epoch_bar = self.batch_bar = None
