"""`OptunaPruningCB`: reports each epoch's value to an Optuna trial and prunes the trial when Optuna says so."""
from __future__ import annotations

from typing import Any

from ..callback import Order
from ..exceptions import CancelFitException
from ..runtime.messages import inform
from .monitor import MonitorCB


def _trial_pruned() -> type[Exception]:
    import optuna

    class TrialPrunedStop(optuna.TrialPruned, CancelFitException):
        """Optuna's TrialPruned that the trainer also reads as a cancel: it leaves `fit` unwrapped, with its type."""

    return TrialPrunedStop


class OptunaPruningCB(MonitorCB):
    '''Reports `epoch_log[monitor]` to `trial` after each epoch and ends the fit with `optuna.TrialPruned` when the
    trial's pruner says so, so `study.optimize` records the trial as PRUNED (not FAIL)

    The report's step is the number of epochs this callback reported before (it keeps counting across fits). The
    fit stops cleanly before the next epoch (every callback cleans up); `optuna.TrialPruned` then leaves `fit` from
    this callback's `cleanup_fit`, which runs last. `pruned_epoch` is the epoch at which it pruned, else None.
    `mode` ('min' or 'max') only describes the value: the direction is the study's.
    '''

    order = Order.FINAL  # raises TrialPruned from cleanup_fit once every other callback has cleaned up

    def __init__(self, trial: Any, monitor: str = 'valid', mode: str = 'min'):
        try:
            import optuna  # noqa: F401
        except ImportError as e:
            raise ImportError("OptunaPruningCB needs Optuna: pip install optuna (or pip install 'aisaac[optuna]').") from e
        super().__init__(monitor, mode)
        self.trial, self.steps_reported, self.pruned_epoch = trial, 0, None

    def before_fit(self, trainer):
        super().before_fit(trainer)
        self.pruned_epoch = None

    def on_value(self, trainer, value, improved):
        self.trial.report(value, self.steps_reported)
        self.steps_reported += 1
        if self.trial.should_prune(): self.pruned_epoch, self._value = trainer.epoch, value

    def before_epoch(self, trainer):
        if self.pruned_epoch is not None: raise CancelFitException()

    def cleanup_fit(self, trainer):
        if self.pruned_epoch is None: return
        message = (f"OptunaPruningCB: trial {self.trial.number} pruned at epoch {self.pruned_epoch} "
                   f"({self.monitor} = {self._value:.6g}).")
        inform(trainer, message)
        # A cancel exception leaves run_callbacks as it is, and cleanup_fit's raise leaves fit: Optuna gets TrialPruned.
        raise _trial_pruned()(message)
