"""`profile(trainer, ...)` (`Trainer.profile`): a fit under ProfileCB, which times every callback at every event."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..callbacks.profile import ProfileCB

if TYPE_CHECKING:
    from ..trainer import Trainer


def profile(trainer: Trainer, n_epochs: int = 1, lr: float = 1e-3, show: bool = True, count_cpu: bool = False,
            **fit_kwargs: Any) -> ProfileCB:
    """Fit under a `ProfileCB` (printing its table when `show`) and return it; `fit_kwargs` go to `fit`."""
    cb = ProfileCB(show=show, count_cpu=count_cpu)
    trainer.add_callbacks(cb)
    try:
        cb.wrap(trainer)  # now rather than at before_fit, so that every callback's before_fit is timed too
        trainer.fit(n_epochs, lr, **fit_kwargs)
    finally:
        cb.unwrap(trainer)  # when the fit never started (bad arguments), cleanup_fit did not
        trainer.remove_callbacks(cb)
    return cb
