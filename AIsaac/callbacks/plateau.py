"""`ReduceLROnPlateauCB`: torch's `ReduceLROnPlateau`, stepped with a monitored number after each validation record."""
from __future__ import annotations

import math
from typing import Any

from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..runtime.args import whole_number
from ..runtime.messages import warn
from .monitor import MonitorCB


class ReduceLROnPlateauCB(MonitorCB):
    '''Multiplies every param group's lr by `factor` once `epoch_log[monitor]` has not improved for `patience` records

    One `torch.optim.lr_scheduler.ReduceLROnPlateau` per optimizer in `trainer.opts`, built at the start of each fit,
    is stepped with the monitored value each time a record is final (after each epoch's validation, or each
    step-based validation; see MonitorCB), so it sees the same sequence of numbers as one stepped by hand. `mode` is
    MonitorCB's ('auto': min for losses, max otherwise); `kwargs` go to `ReduceLROnPlateau` (`threshold`,
    `threshold_mode`, `cooldown`, `min_lr`, `eps`), which decides what counts as an improvement. `schedulers` holds
    them by optimizer name, `scheduler` the one when there is one. `state_dict` holds them: a resumed fit reduces the
    lr where the uninterrupted one would. A NaN value is passed over with a warning (torch would count it as no
    improvement and cut the lr).
    '''

    def __init__(self, monitor: str = 'valid', factor: float = 0.1, patience: int = 2, mode: str = 'auto',
                 **kwargs: Any):
        super().__init__(monitor, mode)
        for k in ("optimizer", "mode", "factor", "patience"):
            if k in kwargs: raise ValueError(f"ReduceLROnPlateauCB sets {k} itself; pass it as its own argument.")
        if not 0 < factor < 1: raise ValueError(f"ReduceLROnPlateauCB: factor multiplies the lr, in (0, 1); got {factor!r}.")
        patience = whole_number("patience", patience, minimum=0, owner="ReduceLROnPlateauCB",
                                what="records without improvement before the lr is reduced")
        self.factor, self.patience, self.kwargs = factor, patience, kwargs
        self.schedulers: dict[str, ReduceLROnPlateau] = {}

    def __repr__(self) -> str:
        return f"ReduceLROnPlateauCB(monitor={self.monitor!r}, factor={self.factor}, patience={self.patience})"

    @property
    def scheduler(self) -> ReduceLROnPlateau | None:
        """The scheduler of the one optimizer (None before a fit, or with several optimizers: see `schedulers`)."""
        return next(iter(self.schedulers.values())) if len(self.schedulers) == 1 else None

    def before_fit(self, trainer):
        super().before_fit(trainer)
        self.schedulers = {name: ReduceLROnPlateau(opt, mode=self.mode, factor=self.factor, patience=self.patience,
                                                   **self.kwargs) for name, opt in trainer.opts.items()}

    def on_value(self, trainer, value, improved):
        if math.isnan(value):  # torch counts NaN as no improvement: a diverged run would lose its lr without a word
            warn(f"ReduceLROnPlateauCB: '{self.monitor}' is nan at epoch {trainer.epoch} (step {trainer.step}): not "
                 f"counted as a record without improvement, the lr is left as it is. A NaN loss usually means the "
                 f"training diverged: lower the lr, or stop at it with TerminateOnNaNCB().")
            return
        for scheduler in self.schedulers.values(): scheduler.step(value)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for name, s in state["schedulers"].items(): self.schedulers[name].load_state_dict(s)
