"""`BaseSchedulerCB`, `BatchSchedulerCB`, `EpochSchedulerCB`, `OneCycleSchedulerCB`: torch lr schedulers as callbacks."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import OneCycleLR

from ..callback import Callback


class BaseSchedulerCB(Callback):
    '''Builds `scheduler_func(opt)` for each optimizer in `trainer.opts` at the start of each fit; subclasses
    decide when they step

    `scheduler_func` is any `torch.optim.lr_scheduler` factory taking the optimizer, e.g.
    `functools.partial(StepLR, step_size=10)`. The schedulers step only in training phases. torch's schedulers
    scale each param group from its own starting lr, so the ratios between groups (`fit(lr=slice(lo, hi))`) hold.
    `schedulers` holds them by the optimizers' names; `scheduler` is the one scheduler when there is one.
    '''

    def __init__(self, scheduler_func: Callable[[Optimizer], Any]):
        if not callable(scheduler_func):
            raise TypeError(f"scheduler_func must build a scheduler from the optimizer, like "
                            f"functools.partial(torch.optim.lr_scheduler.StepLR, step_size=10); got {scheduler_func!r}.")
        self.scheduler_func = scheduler_func
        self.schedulers: dict[str, Any] = {}

    @property
    def scheduler(self) -> Any:
        """The scheduler of the one optimizer (None before a fit, or with several optimizers: see `schedulers`)."""
        return next(iter(self.schedulers.values())) if len(self.schedulers) == 1 else None

    def before_fit(self, trainer):
        self.schedulers = {name: self.scheduler_func(opt) for name, opt in trainer.opts.items()}

    def _step(self, trainer):
        if trainer.training:
            for scheduler in self.schedulers.values(): scheduler.step()

    # CheckpointCB saves these and fit(resume_from=...) loads them after before_fit has built the scheduler, so a
    # resumed fit continues the schedule instead of restarting it.
    def state_dict(self) -> dict[str, Any]:
        """The schedulers' states by optimizer name (empty before the first fit)."""
        return {name: s.state_dict() for name, s in self.schedulers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the schedulers built at before_fit to `state`."""
        for name, s in state.items(): self.schedulers[name].load_state_dict(s)


class BatchSchedulerCB(BaseSchedulerCB):
    '''Steps the scheduler after every training batch (with GradAccumCB: every batch, not every optimizer step)'''

    def after_batch(self, trainer): self._step(trainer)


class EpochSchedulerCB(BaseSchedulerCB):
    '''Steps the scheduler after every training epoch'''

    def after_epoch(self, trainer): self._step(trainer)


class OneCycleSchedulerCB(BatchSchedulerCB):
    '''`OneCycleLR` over all the training batches of the fit, peaking at each param group's lr as fit set it (so
    `fit(n, lr=slice(1e-5, 1e-3))` peaks at 1e-5 ... 1e-3, and timm's `lr_scale` holds); `kwargs` go to `OneCycleLR`'''

    def __init__(self, **kwargs: Any):
        for k in ("max_lr", "total_steps", "epochs", "steps_per_epoch"):
            if k in kwargs:
                raise ValueError(f"OneCycleSchedulerCB sets {k} itself (max_lr from fit's lr, total steps from "
                                 f"n_epochs * len(dls.train)); leave it out or use BatchSchedulerCB(partial(OneCycleLR, ...)).")
        super().__init__(partial(OneCycleLR, **kwargs))

    def before_fit(self, trainer):
        try: n_batches = len(trainer.dls.train)
        except TypeError:
            if not trainer.run_train: n_batches = 0
            else:
                raise TypeError(f"OneCycleSchedulerCB plans its cycle over all the fit's training batches, but the "
                                f"training loader ({type(trainer.dls.train).__name__}) has no length (an "
                                f"IterableDataset or a stream), so it cannot know how many there will be. Give the "
                                f"dataset a __len__, or set the number of steps yourself: BatchSchedulerCB(partial("
                                f"OneCycleLR, max_lr=..., total_steps=<steps>)).") from None
        total = trainer.n_epochs * n_batches
        # Nothing to schedule without training batches (and OneCycleLR refuses total_steps=0).
        if not (trainer.run_train and total > 0):
            self.schedulers = {}
            return
        self.schedulers = {name: self.scheduler_func(opt, max_lr=[g['lr'] for g in opt.param_groups], total_steps=total)
                           for name, opt in trainer.opts.items()}
