"""`Trainer.profile`: a fit under `ProfileCB`, before_fit included, returning the profile."""
from __future__ import annotations

from typing import Any

from .callbacks.profile import ProfileCB
from .trainer import Trainer


def profile(self: Trainer, n_epochs: int = 1, lr: float = 1e-3, show: bool = True, count_cpu: bool = False,
            **fit_kwargs: Any) -> ProfileCB:
    """Fit under a `ProfileCB` (printing its table when `show`) and return it; `fit_kwargs` go to `fit`."""
    cb = ProfileCB(show=show, count_cpu=count_cpu)
    self.add_callbacks(cb)
    try:
        cb.wrap(self)  # now rather than at before_fit, so that every callback's before_fit is timed too
        self.fit(n_epochs, lr, **fit_kwargs)
    finally:
        if cb._wrapped is not None:  # the fit never started (bad arguments): undo the wrapping here
            cb.counter.__exit__()
            self._plan = cb._original
            cb._wrapped = None
        self.remove_callbacks(cb)
    return cb


Trainer.profile = profile
