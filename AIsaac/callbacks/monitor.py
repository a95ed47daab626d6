"""`MonitorCB`: the base for callbacks that act on one number of `trainer.epoch_log` once per epoch."""
from __future__ import annotations

import math
import sys

from ..callback import Callback, Order, final_epoch_log


class MonitorCB(Callback):
    '''Reads `trainer.epoch_log[monitor]` once each epoch's numbers are final and calls `on_value(trainer, value, improved)`

    `mode` is 'min' (lower is better, e.g. a loss) or 'max' (e.g. accuracy); a value improves on the best so far
    when it beats it by more than `min_delta`. `best` and `best_epoch` hold the best value and its epoch.
    With several processes, every process decides from the main process's value, so all take the same decisions.
    '''

    order = Order.LOGGER  # reads epoch_log once MetricsCB has filled it

    def __init__(self, monitor: str = 'valid', mode: str = 'min', min_delta: float = 0.):
        if mode not in ('min', 'max'):
            raise ValueError(f"mode must be 'min' (lower is better, like a loss) or 'max' (like accuracy); got {mode!r}.")
        if not min_delta >= 0: raise ValueError(f"min_delta must be >= 0; got {min_delta!r}.")
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.best, self.best_epoch = None, None

    def before_fit(self, trainer):
        self.best, self.best_epoch, self._last_epoch = None, None, None

    def cleanup_epoch(self, trainer):
        log = final_epoch_log(trainer)
        if not log or self._last_epoch == trainer.epoch: return
        if sys.exc_info()[1] is not None: return  # the fit is stopping: no decision (and no error over its own)
        if self.monitor not in log:
            # A loss is missing when its phase had no batch: a fit without validation (lr_find, say), or a phase
            # cancelled before its first batch.
            if self.monitor in ('train', 'valid'): return
            raise KeyError(f"{type(self).__name__} monitors '{self.monitor}', which is not in the epoch log "
                           f"(its keys: {', '.join(map(str, log))}); pass monitor= one of those, e.g. a MetricsCB metric name.")
        self._last_epoch = trainer.epoch
        value = float(log[self.monitor])
        if trainer.num_processes > 1:  # every process decides from the main process's number
            values = trainer.gather_object(value)
            if values is None: return  # another process stopped the fit
            value = values[0]
        improved = math.isfinite(value) and (self.best is None or (
            value < self.best - self.min_delta if self.mode == 'min' else value > self.best + self.min_delta))
        if improved: self.best, self.best_epoch = value, trainer.epoch
        self.on_value(trainer, value, improved)

    def on_value(self, trainer, value: float, improved: bool) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define on_value(trainer, value, improved).")
