"""`final_epoch_log`: the epoch's finished numbers (`trainer.epoch_log`) at the one moment they are complete."""
from __future__ import annotations

from typing import Any


def final_epoch_log(trainer: Any) -> dict | None:
    """`trainer.epoch_log` when called at `cleanup_epoch` of an epoch's last phase and the log is this epoch's, else None.

    MetricsCB writes the log there (order 0) and ProgressCB (order 50) clears it, so loggers use an order between.
    """
    if trainer.training and trainer.run_valid: return None  # the validation phase still follows
    log = getattr(trainer, "epoch_log", None)
    return log if log is not None and log.get("epoch") == trainer.epoch else None
