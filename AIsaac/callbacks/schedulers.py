"""`BaseSchedulerCB`, `BatchSchedulerCB`, `EpochSchedulerCB`, `OneCycleSchedulerCB`: torch lr schedulers as callbacks."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import OneCycleLR

from ..callback import Callback


class BaseSchedulerCB(Callback):
    '''Builds `scheduler_func(trainer.opt)` at the start of each fit; subclasses decide when it steps

    `scheduler_func` is any `torch.optim.lr_scheduler` factory taking the optimizer, e.g.
    `functools.partial(StepLR, step_size=10)`. The scheduler steps only in training phases.
    '''

    def __init__(self, scheduler_func: Callable[[Optimizer], Any]):
        if not callable(scheduler_func):
            raise TypeError(f"scheduler_func must build a scheduler from the optimizer, like "
                            f"functools.partial(torch.optim.lr_scheduler.StepLR, step_size=10); got {scheduler_func!r}.")
        self.scheduler_func = scheduler_func
        self.scheduler = None

    def before_fit(self, trainer): self.scheduler = self.scheduler_func(trainer.opt)

    def _step(self, trainer):
        if trainer.training and self.scheduler is not None: self.scheduler.step()

    # CheckpointCB saves these and fit(resume_from=...) loads them after before_fit has built the scheduler, so a
    # resumed fit continues the schedule instead of restarting it.
    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state (empty before the first fit)."""
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the scheduler built at before_fit to `state`."""
        if self.scheduler is not None and state: self.scheduler.load_state_dict(state)


class BatchSchedulerCB(BaseSchedulerCB):
    '''Steps the scheduler after every training batch (with GradAccumCB: every batch, not every optimizer step)'''

    def after_batch(self, trainer): self._step(trainer)


class EpochSchedulerCB(BaseSchedulerCB):
    '''Steps the scheduler after every training epoch'''

    def after_epoch(self, trainer): self._step(trainer)


class OneCycleSchedulerCB(BatchSchedulerCB):
    '''`OneCycleLR` with `max_lr=trainer.lr` over all the training batches of the fit; `kwargs` go to `OneCycleLR`'''

    def __init__(self, **kwargs: Any):
        for k in ("max_lr", "total_steps", "epochs", "steps_per_epoch"):
            if k in kwargs:
                raise ValueError(f"OneCycleSchedulerCB sets {k} itself (max_lr from fit's lr, total steps from "
                                 f"n_epochs * len(dls.train)); leave it out or use BatchSchedulerCB(partial(OneCycleLR, ...)).")
        super().__init__(partial(OneCycleLR, **kwargs))

    def before_fit(self, trainer):
        total = trainer.n_epochs * len(trainer.dls.train)
        # Nothing to schedule without training batches (and OneCycleLR refuses total_steps=0).
        self.scheduler = (self.scheduler_func(trainer.opt, max_lr=trainer.lr, total_steps=total)
                          if trainer.run_train and total > 0 else None)
