"""`BaseSchedulerCB`, `BatchSchedulerCB`, `EpochSchedulerCB`, and the schedules spread over the whole fit
(`FitSchedulerCB`: `OneCycleSchedulerCB`, `WarmupCosineSchedulerCB`): torch lr schedulers as callbacks."""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

from ..callback import Callback
from ..runtime.batch import loader_length
from ..runtime.steps import StepWatch


class BaseSchedulerCB(Callback):
    '''Builds `scheduler_func(opt)` for each optimizer in `trainer.opts` at the start of each fit; subclasses
    decide when they step

    `scheduler_func` is any `torch.optim.lr_scheduler` factory taking the optimizer, e.g.
    `functools.partial(StepLR, step_size=10)`. The schedulers step only in training phases. torch's schedulers
    scale each param group from its own starting lr, so the ratios between groups (`fit(lr=slice(lo, hi))`) hold.
    `schedulers` holds them by the optimizers' names; `scheduler` is the one scheduler when there is one.
    '''

    def __init__(self, scheduler_func: Callable[..., Any]):
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


def fit_length(trainer: Any, owner: str) -> tuple[int, bool]:
    """`(total, per_step)`: how long a schedule spread over the fit is. `trainer.max_steps` optimizer steps when the fit
    has a step budget (`per_step` True), else `n_epochs * len(dls.train)` training batches; an error naming what to
    pass for a training loader without a length (a stream)."""
    if trainer.max_steps is not None: return trainer.max_steps, True
    n = loader_length(trainer.dls.train)
    if n is None:
        raise TypeError(f"{owner} spreads its schedule over the whole fit, but the training loader has no length (a "
                        f"stream, e.g. an IterableDataset), so the fit's length is unknown. Give the fit a step budget: "
                        f"trainer.fit(..., max_steps=N) (the schedule then lasts N optimizer steps).")
    return trainer.n_epochs * n, False


class FitSchedulerCB(BatchSchedulerCB):
    '''The base of schedules spread over the whole fit: `build(opt, total)` makes each optimizer's scheduler

    With a step budget (`fit(..., max_steps=N)`) the schedule lasts N optimizer steps and steps with `trainer.step`
    (with GradAccumCB, once per real step); otherwise it lasts `n_epochs * len(dls.train)` training batches and steps
    after each (with GradAccumCB, every batch). `total` and `per_step` say which, once the fit has started. A fit
    without training builds nothing. It never steps past its end (torch's OneCycleLR would raise there).
    '''

    total: int | None = None
    per_step: bool = False
    # Its state is a schedule of this fit's length: a resume that changes the length is refused (resume.check_schedules).
    sized_by_fit = True

    def build(self, opt: Optimizer, total: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define build(opt, total), returning the optimizer's scheduler.")

    def before_fit(self, trainer):
        self.schedulers, self.total, self.per_step, self._watch = {}, None, False, StepWatch()
        if not trainer.run_train: return
        total, per_step = fit_length(trainer, type(self).__name__)
        if total <= 0: return  # nothing to schedule (and OneCycleLR refuses total_steps=0)
        self.total, self.per_step = total, per_step
        self.schedulers = {name: self.build(opt, total) for name, opt in trainer.opts.items()}

    def _step(self, trainer):
        if not trainer.training: return
        for scheduler in self.schedulers.values():
            if scheduler.last_epoch < self.total: scheduler.step()

    def _follow(self, trainer) -> None:
        # trainer.step is a Python int: following it reads nothing from the device.
        if self.per_step and trainer.training and self._watch.moved(trainer): self._step(trainer)

    def before_batch(self, trainer): self._follow(trainer)  # also takes the count at a resumed fit's first batch

    def after_batch(self, trainer):
        if self.per_step: self._follow(trainer)
        else: self._step(trainer)

    def after_epoch(self, trainer): self._follow(trainer)  # GradAccumCB's last step of an epoch

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._watch.reset()


class OneCycleSchedulerCB(FitSchedulerCB):
    '''`OneCycleLR` over the whole fit (see FitSchedulerCB: `max_steps` optimizer steps, else every training batch),
    peaking at each param group's lr as fit set it (so `fit(n, lr=slice(1e-5, 1e-3))` peaks at 1e-5 ... 1e-3, and
    timm's `lr_scale` holds); `kwargs` go to `OneCycleLR`'''

    def __init__(self, **kwargs: Any):
        for k in ("max_lr", "total_steps", "epochs", "steps_per_epoch"):
            if k in kwargs:
                raise ValueError(f"OneCycleSchedulerCB sets {k} itself (max_lr from fit's lr, total steps from "
                                 f"fit's max_steps, else n_epochs * len(dls.train)); leave it out or use "
                                 f"BatchSchedulerCB(partial(OneCycleLR, ...)).")
        super().__init__(partial(OneCycleLR, **kwargs))

    def build(self, opt: Optimizer, total: int) -> Any:
        return self.scheduler_func(opt, max_lr=[g['lr'] for g in opt.param_groups], total_steps=total)


def warmup_cosine(step: int, warmup: int, total: int, end_factor: float) -> float:
    """The lr factor at `step` (0-based) of `total`: linear from 0 over `warmup` steps, then a half cosine from 1 down
    to `end_factor` at `total` (Hugging Face's `get_cosine_schedule_with_warmup`, with a floor)."""
    if step < warmup: return step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return end_factor + (1 - end_factor) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosineSchedulerCB(FitSchedulerCB):
    '''A linear warmup to each param group's lr, then a cosine decay to `end_factor` times it, over the whole fit
    (see FitSchedulerCB: `max_steps` optimizer steps, else every training batch)

    `warmup`: a fraction of the fit in [0, 1) (a float, e.g. 0.1), or a number of steps (an int, e.g. 100). The
    schedule is `torch.optim.lr_scheduler.LambdaLR` with `warmup_cosine`: step k of the warmup uses `k / warmup` of the
    lr (the first step 0, as Hugging Face's `get_cosine_schedule_with_warmup`).
    '''

    def __init__(self, warmup: float | int = 0.1, end_factor: float = 0.):
        if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup < 0 or (
                isinstance(warmup, float) and warmup >= 1):
            raise ValueError(f"WarmupCosineSchedulerCB: warmup must be a fraction of the fit in [0, 1) (e.g. 0.1) or a "
                             f"whole number of steps (e.g. 100); got {warmup!r}.")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"WarmupCosineSchedulerCB: end_factor is the final lr as a fraction of the peak, in [0, "
                             f"1]; got {end_factor!r}.")
        self.warmup, self.end_factor = warmup, float(end_factor)
        super().__init__(LambdaLR)

    def __repr__(self) -> str: return f"WarmupCosineSchedulerCB(warmup={self.warmup}, end_factor={self.end_factor})"

    def build(self, opt: Optimizer, total: int) -> Any:
        warmup = int(self.warmup * total) if isinstance(self.warmup, float) else self.warmup
        if warmup > total:
            raise ValueError(f"WarmupCosineSchedulerCB: warmup={self.warmup} steps is longer than the fit's {total}; "
                             f"pass fewer steps, or a fraction of the fit (e.g. warmup=0.1).")
        return self.scheduler_func(opt, partial(warmup_cosine, warmup=warmup, total=total, end_factor=self.end_factor))
