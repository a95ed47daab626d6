"""`EarlyStoppingCB`: stops the fit when a monitored number has not improved for `patience` epochs."""
from __future__ import annotations

from typing import Any

from ..exceptions import CancelFitException
from ..runtime.args import whole_number
from ..runtime.messages import inform
from .monitor import MonitorCB


class EarlyStoppingCB(MonitorCB):
    '''Stops the fit after `patience` epochs in a row without improvement of `epoch_log[monitor]` (see MonitorCB)

    The decision is taken when the epoch's numbers are final and the fit stops before the next epoch starts, so
    the epoch's row is still shown. It says so on the "AIsaac" logger (INFO). `stopped_epoch` is the last epoch run
    when it stopped the fit, else None. `state_dict` holds the count and the decision, so a resumed fit stops where
    the uninterrupted one would.
    '''

    def __init__(self, monitor: str = 'valid', patience: int = 3, min_delta: float = 0., mode: str = 'auto'):
        super().__init__(monitor, mode, min_delta)
        patience = whole_number("patience", patience, owner="EarlyStoppingCB", what="epochs without improvement")
        self.patience, self.wait, self.stopped_epoch, self._stop = patience, 0, None, False

    def before_fit(self, trainer):
        super().before_fit(trainer)
        self.wait, self.stopped_epoch, self._stop = 0, None, False

    def on_value(self, trainer, value, improved):
        self.wait = 0 if improved else self.wait + 1
        if self.wait >= self.patience: self._stop, self.stopped_epoch = True, trainer.epoch

    def before_epoch(self, trainer):
        if self._stop:
            inform(trainer, f"EarlyStoppingCB: no improvement of '{self.monitor}' for {self.patience} epochs; stopped after "
                  f"epoch {self.stopped_epoch} " + (f"(best {self.best:.6g} at epoch {self.best_epoch})." if self.best is not None
                                                     else "(no finite value was seen)."))
            raise CancelFitException()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": self.wait, "stopped_epoch": self.stopped_epoch, "stop": self._stop}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait, self.stopped_epoch, self._stop = state["wait"], state["stopped_epoch"], state["stop"]
