"""`MonitorCB`: the base for callbacks that act on one number of `trainer.epoch_log` once per epoch."""
from __future__ import annotations

import logging
import math
from typing import Any

from ..callback import Callback, Order, check_log_key, final_epoch_log, is_record_key
from ..exceptions import CallbackSetupError, CancelEpochException
from ..runtime.batch import loader_length
from ..runtime.messages import inform

# Names that are lower-is-better; any other monitored name (accuracy, R2, F1...) is higher-is-better.
MIN_WORDS = ("loss", "valid", "train", "error", "mae", "mse", "rmse", "perplexity")


def auto_mode(monitor: str) -> str:
    """'min' for a name containing loss, valid, train, error, mae, mse (rmse, perplexity); 'max' otherwise."""
    name = monitor.lower()
    return "min" if any(w in name for w in MIN_WORDS) else "max"


def _check_valid_batches(cb: Any, trainer: Any) -> None:
    """Raise CallbackSetupError when `cb` monitors a validation number but the validation loader has no batch: no
    epoch would have the number, so the monitor would never act (a loader without a length is accepted)."""
    monitor = cb.monitor
    if not trainer.run_valid or monitor.startswith("train") or is_record_key(monitor): return
    if loader_length(trainer.dls.valid) != 0: return  # batches, or a stream: accepted
    name = type(cb).__name__
    raise CallbackSetupError(f"{name} monitors '{monitor}', a validation number, but the validation loader is empty "
                             f"(0 batches), so no epoch would have it and {name} would never act. Give the validation "
                             f"data rows (check the dataset's length, and batch_size with drop_last=True), or monitor "
                             f"a training number (monitor='train').")


class MonitorCB(Callback):
    '''Reads `trainer.epoch_log[monitor]` once each epoch's numbers are final and calls `on_value(trainer, value, improved)`

    `mode` is 'min' (lower is better, e.g. a loss), 'max' (e.g. accuracy) or 'auto' (the default: min for names
    with loss, valid, train, error, mae or mse in them, max otherwise; the choice is logged at fit start, at DEBUG
    level on the "AIsaac" logger). A value improves on the best so far when it beats it by more than `min_delta`.
    `best` and `best_epoch` hold the best value and its epoch. At fit start, a monitor that no callback will put in
    the epoch log is an error (a name only `trainer.log` may produce is checked when the first epoch ends), and so
    is a validation number with an empty validation loader. Epochs
    with an interrupted or cancelled phase are ignored. Takes no part in side runs (`lr_find`...). `state_dict`
    holds what it has seen. With several processes, every process decides from the main process's value, so all
    take the same decisions.
'''

    order = Order.LOGGER  # reads epoch_log once MetricsCB has filled it
    side_runs = False

    def __init__(self, monitor: str = 'valid', mode: str = 'auto', min_delta: float = 0.):
        if mode not in ('min', 'max', 'auto'):
            raise ValueError(f"mode must be 'min' (lower is better, like a loss), 'max' (like accuracy) or 'auto'; "
                             f"got {mode!r}.")
        if not min_delta >= 0: raise ValueError(f"min_delta must be >= 0; got {min_delta!r}.")
        self.auto = mode == 'auto'
        if self.auto: mode = auto_mode(monitor)
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.best, self.best_epoch = None, None
        self._last_epoch: tuple[int, int] | None = None
        self.best_step: int | None = None

    def before_fit(self, trainer):
        check_log_key(self, self.monitor, trainer)
        _check_valid_batches(self, trainer)
        if self.auto:  # stated on the "AIsaac" logger at DEBUG level: a default, not news at every fit
            inform(trainer, f"{type(self).__name__}: mode='auto' monitors '{self.monitor}' with mode={self.mode!r} "
                            f"({'lower' if self.mode == 'min' else 'higher'} is better).", logging.DEBUG)
        self.best, self.best_epoch, self._last_epoch, self.best_step = None, None, None, None

    def cleanup_epoch(self, trainer):
        log = final_epoch_log(trainer)
        # One decision per record: an epoch, or each validation of a fit validated every K steps.
        if not log or self._last_epoch == (trainer.epoch, trainer.step): return
        # The fit is stopping (an error, or a cancel of more than this phase): no decision, and no error over its own.
        if not isinstance(trainer.exception, (type(None), CancelEpochException)): return
        if self.monitor not in log:
            # A loss is missing when its phase had no batch: a fit without validation (lr_find, say), or a phase
            # cancelled before its first batch.
            if self.monitor in ('train', 'valid'): return
            raise KeyError(f"{type(self).__name__} monitors '{self.monitor}', which is not in the epoch log "
                           f"(its keys: {', '.join(map(str, log))}); pass monitor= one of those, e.g. a MetricsCB metric name.")
        self._last_epoch = (trainer.epoch, trainer.step)
        value = float(log[self.monitor])
        if trainer.num_processes > 1:  # every process decides from the main process's number
            values = trainer.gather_object(value)
            if values is None: return  # another process stopped the fit
            value = values[0]
        improved = math.isfinite(value) and (self.best is None or (
            value < self.best - self.min_delta if self.mode == 'min' else value > self.best + self.min_delta))
        if improved: self.best, self.best_epoch, self.best_step = value, trainer.epoch, trainer.step
        self.on_value(trainer, value, improved)

    def on_value(self, trainer, value: float, improved: bool) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define on_value(trainer, value, improved).")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "last_epoch": self._last_epoch,
                "best_step": self.best_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, last = state["best"], state["best_epoch"], state["last_epoch"]
        self._last_epoch = tuple(last) if isinstance(last, (list, tuple)) else last
        self.best_step = state.get("best_step")
