"""`MonitorCB`: the base for callbacks that act on one number of `trainer.epoch_log` once per epoch."""
from __future__ import annotations

import logging
import math
from typing import Any

from ..callback import Callback, Order, check_log_key, final_epoch_log

log = logging.getLogger(__name__)
# Names that are lower-is-better; any other monitored name (accuracy, R2, F1...) is higher-is-better.
MIN_WORDS = ("loss", "valid", "train", "error", "mae", "mse", "rmse", "perplexity")


def auto_mode(monitor: str) -> str:
    """'min' for a name containing loss, valid, train, error, mae, mse (rmse, perplexity); 'max' otherwise."""
    name = monitor.lower()
    return "min" if any(w in name for w in MIN_WORDS) else "max"


class MonitorCB(Callback):
    '''Reads `trainer.epoch_log[monitor]` once each epoch's numbers are final and calls `on_value(trainer, value, improved)`

    `mode` is 'min' (lower is better, e.g. a loss), 'max' (e.g. accuracy) or 'auto' (the default: min for names
    with loss, valid, train, error, mae or mse in them, max otherwise; the choice is logged). A value improves on the
    best so far when it beats it by more than `min_delta`. `best` and `best_epoch` hold the best value and its epoch.
    At fit start, a monitor that no callback puts in the epoch log is an error. Epochs with an interrupted or
    cancelled phase are ignored. Takes no part in side runs (`lr_find`...). `state_dict` holds what it has seen.
    '''

    order = Order.LOGGER  # reads epoch_log once MetricsCB has filled it
    side_runs = False

    def __init__(self, monitor: str = 'valid', mode: str = 'auto', min_delta: float = 0.):
        if mode not in ('min', 'max', 'auto'):
            raise ValueError(f"mode must be 'min' (lower is better, like a loss), 'max' (like accuracy) or 'auto'; "
                             f"got {mode!r}.")
        if not min_delta >= 0: raise ValueError(f"min_delta must be >= 0; got {min_delta!r}.")
        if mode == 'auto':
            mode = auto_mode(monitor)
            log.info("%s: mode='auto' monitors '%s' with mode=%r (%s is better).", type(self).__name__, monitor, mode,
                     "lower" if mode == "min" else "higher")
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.best, self.best_epoch, self._last_epoch = None, None, None

    def before_fit(self, trainer):
        check_log_key(self, self.monitor, trainer)
        self.best, self.best_epoch, self._last_epoch = None, None, None

    def cleanup_epoch(self, trainer):
        log = final_epoch_log(trainer)
        if not log or self._last_epoch == trainer.epoch: return
        if self.monitor not in log:
            raise KeyError(f"{type(self).__name__} monitors '{self.monitor}', which is not in the epoch log "
                           f"(its keys: {', '.join(map(str, log))}); pass monitor= one of those, e.g. a MetricsCB metric name.")
        self._last_epoch = trainer.epoch
        value = float(log[self.monitor])
        improved = math.isfinite(value) and (self.best is None or (
            value < self.best - self.min_delta if self.mode == 'min' else value > self.best + self.min_delta))
        if improved: self.best, self.best_epoch = value, trainer.epoch
        self.on_value(trainer, value, improved)

    def on_value(self, trainer, value: float, improved: bool) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define on_value(trainer, value, improved).")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "last_epoch": self._last_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self._last_epoch = state["best"], state["best_epoch"], state["last_epoch"]
