"""`BaseSchedulerCB`, `BatchSchedulerCB`, `EpochSchedulerCB`, and the schedules sized by the fit's optimizer steps
(`FitSchedulerCB`: any torch or Hugging Face schedule, a named warmup-then-decay; `OneCycleSchedulerCB`,
`WarmupCosineSchedulerCB`): torch lr schedulers as callbacks."""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

from ..callback import Callback
from ..order import Order
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


def fit_length(trainer: Any, owner: str) -> int:
    """The fit's optimizer steps: `trainer.max_steps` when the fit has a step budget, else `n_epochs` times an
    epoch's steps (its training batches, or fewer where a callback steps once per several: `optimizer_steps(batches)`,
    e.g. GradAccumCB's), the smaller of the two when both bound the fit; an error naming what to pass for a training
    loader without a length (a stream)."""
    n = loader_length(trainer.dls.train)
    if n is None:
        if trainer.max_steps is not None: return trainer.max_steps
        raise TypeError(f"{owner} spreads its schedule over the whole fit, but the training loader has no length (a "
                        f"stream, e.g. an IterableDataset), so the fit's length is unknown. Give the fit a step budget: "
                        f"trainer.fit(..., max_steps=N) (the schedule then lasts N optimizer steps).")
    for cb in trainer.cbs:  # GradAccumCB: one step per n batches, and one for an epoch's partial group
        steps = getattr(cb, "optimizer_steps", None)
        if callable(steps): n = steps(n)
    if trainer.n_epochs is None: return trainer.max_steps
    total = trainer.n_epochs * n
    return total if trainer.max_steps is None else min(total, trainer.max_steps)


def warmup_decay(step: int, warmup: int, total: int, shape: Callable[[float, float], float], end_factor: float = 0.,
                 power: float = 1.) -> float:
    """The lr factor at optimizer step `step` (0-based) of `total`: linear from 0 over `warmup` steps (step k uses
    k / warmup, the first 0, as Hugging Face's schedules), then `end_factor + (1 - end_factor) * shape(progress, power)`
    with `progress` going from 0 to 1 at `total` (`SHAPES`: Hugging Face's linear, cosine, polynomial and constant
    schedules, each with a floor of `end_factor`)."""
    if step < warmup: return step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return end_factor + (1 - end_factor) * shape(progress, power)


def _linear(progress: float, power: float) -> float: return 1 - progress
def _cosine(progress: float, power: float) -> float: return 0.5 * (1 + math.cos(math.pi * progress))
def _polynomial(progress: float, power: float) -> float: return (1 - progress) ** power
def _constant(progress: float, power: float) -> float: return 1.


# The decays after the warmup by name (FitSchedulerCB's `schedule`), each `shape(progress, power)` from 1 at progress 0.
SHAPES: dict[str, Callable[[float, float], float]] = {
    "linear": _linear, "cosine": _cosine, "polynomial": _polynomial, "constant": _constant}


def warmup_cosine(step: int, warmup: int, total: int, end_factor: float) -> float:
    """The lr factor at `step` (0-based) of `total`: linear from 0 over `warmup` steps, then a half cosine from 1 down
    to `end_factor` at `total` (Hugging Face's `get_cosine_schedule_with_warmup`, with a floor)."""
    return warmup_decay(step, warmup, total, _cosine, end_factor)


Schedule = Callable[[Optimizer, int], Any]  # schedule(optimizer, total_steps) -> its lr scheduler


class FitSchedulerCB(BaseSchedulerCB):
    '''A schedule sized by the fit: `schedule(opt, total_steps)` builds each optimizer's scheduler from the fit's total
    optimizer steps, or `schedule` names a warmup-then-decay (`warmup`, `end_factor`, `power` configure it)

    ```python
    FitSchedulerCB("linear", warmup=0.1)                    # get_linear_schedule_with_warmup
    FitSchedulerCB("cosine", warmup=100, end_factor=0.1)    # WarmupCosineSchedulerCB(100, 0.1)
    FitSchedulerCB("polynomial", warmup=0.05, power=2)      # get_polynomial_decay_schedule_with_warmup
    FitSchedulerCB("constant", warmup=100)                  # get_constant_schedule_with_warmup
    FitSchedulerCB(lambda opt, total_steps: get_linear_schedule_with_warmup(opt, 100, total_steps))
    ```

    `total_steps` is the fit's optimizer steps: `max_steps` with a step budget, else `n_epochs` times an epoch's
    steps (with `GradAccumCB(n)`, `ceil(len(dls.train) / n)`); the schedulers step as `trainer.step` moves (once per
    real optimizer step: not on GradAccumCB's accumulating batches, nor on a step a GradScaler skipped), only in
    training, and never past their end (torch's OneCycleLR would raise there). `total` says it once the fit has
    started; a fit without training builds nothing. A named schedule is `LambdaLR` with `warmup_decay`: `warmup`
    is a fraction of the fit in [0, 1) (a float, e.g. 0.1) or a number of steps (an int, e.g. 100), during which
    step k uses k / warmup of each param group's lr; then "linear", "cosine" (a half cosine), "polynomial" (`(1 -
    progress) ** power`) or "constant" decay to `end_factor` times that lr at the fit's end (the formulas of Hugging
    Face's `get_*_schedule_with_warmup`, whose polynomial `lr_end` is `end_factor * lr`).
    '''

    # After the step's callbacks, whatever order they were added in (GradAccumCB steps an epoch's last group at
    # after_epoch), so the schedule follows that step before CheckpointCB saves it.
    order = Order.DEFAULT + 1
    total: int | None = None
    # Its state is a schedule of this fit's length: a resume that changes the length is refused (resume.check_schedules).
    sized_by_fit = True

    def __init__(self, schedule: str | Schedule, warmup: float | int = 0., end_factor: float = 0., power: float = 1.):
        owner = type(self).__name__
        self.schedule = schedule if isinstance(schedule, str) else None
        if self.schedule is None:
            if not callable(schedule):
                raise TypeError(f"{owner}: schedule is a name ({', '.join(map(repr, SHAPES))}) or a function "
                                f"(opt, total_steps) -> scheduler, e.g. lambda opt, total_steps: "
                                f"get_linear_schedule_with_warmup(opt, 100, total_steps); got {schedule!r}.")
            if (warmup, end_factor, power) != (0., 0., 1.):
                raise ValueError(f"{owner}: warmup, end_factor and power configure a named schedule; a schedule "
                                 f"function builds its own (pass them to it).")
            super().__init__(schedule)
            return
        if schedule not in SHAPES:
            raise ValueError(f"{owner}: unknown schedule {schedule!r}; the named ones are "
                             f"{', '.join(map(repr, SHAPES))} (each after a linear warmup of `warmup` steps; Hugging "
                             f"Face's constant_with_warmup is 'constant' with warmup=...), or pass a function "
                             f"(opt, total_steps) -> scheduler.")
        if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup < 0 or (
                isinstance(warmup, float) and warmup >= 1):
            raise ValueError(f"{owner}: warmup must be a fraction of the fit in [0, 1) (e.g. 0.1) or a whole number of "
                             f"steps (e.g. 100); got {warmup!r}.")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"{owner}: end_factor is the final lr as a fraction of the peak, in [0, 1]; got "
                             f"{end_factor!r}.")
        if not power > 0: raise ValueError(f"{owner}: power is the polynomial decay's exponent, > 0; got {power!r}.")
        self.warmup, self.end_factor, self.power = warmup, float(end_factor), float(power)
        super().__init__(LambdaLR)

    def __repr__(self) -> str:
        if self.schedule is None: return super().__repr__()
        return (f"{type(self).__name__}({self.schedule!r}, warmup={self.warmup}, end_factor={self.end_factor}, "
                f"power={self.power})")

    def build(self, opt: Optimizer, total: int) -> Any:
        """The optimizer's scheduler for a fit of `total` optimizer steps."""
        if self.schedule is None: return self.scheduler_func(opt, total)
        warmup = int(self.warmup * total) if isinstance(self.warmup, float) else self.warmup
        if warmup > total:
            raise ValueError(f"{type(self).__name__}: warmup={self.warmup} steps is longer than the fit's {total}; "
                             f"pass fewer steps, or a fraction of the fit (e.g. warmup=0.1).")
        return self.scheduler_func(opt, partial(warmup_decay, warmup=warmup, total=total, shape=SHAPES[self.schedule],
                                                end_factor=self.end_factor, power=self.power))

    def before_fit(self, trainer):
        self.schedulers, self.total, self._watch = {}, None, StepWatch()
        if not trainer.run_train: return
        total = fit_length(trainer, type(self).__name__)
        if total <= 0: return  # nothing to schedule (and OneCycleLR refuses total_steps=0)
        self.total = total
        self.schedulers = {name: self.build(opt, total) for name, opt in trainer.opts.items()}

    def _step(self, trainer):
        for scheduler in self.schedulers.values():
            if scheduler.last_epoch < self.total: scheduler.step()

    def _follow(self, trainer) -> None:
        # trainer.step is a Python int: following it reads nothing from the device.
        if trainer.training and self._watch.moved(trainer): self._step(trainer)

    def before_batch(self, trainer): self._follow(trainer)  # also takes the count at a resumed fit's first batch
    def after_batch(self, trainer): self._follow(trainer)
    def after_epoch(self, trainer): self._follow(trainer)  # GradAccumCB's last step of an epoch

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._watch.reset()


class OneCycleSchedulerCB(FitSchedulerCB):
    '''`OneCycleLR` over the fit's optimizer steps (see FitSchedulerCB: `max_steps`, else the epochs' steps), peaking
    at each param group's lr as fit set it (so `fit(n, lr=slice(1e-5, 1e-3))` peaks at 1e-5 ... 1e-3, and timm's
    `lr_scale` holds); `kwargs` go to `OneCycleLR`'''

    def __init__(self, **kwargs: Any):
        for k in ("max_lr", "total_steps", "epochs", "steps_per_epoch"):
            if k in kwargs:
                raise ValueError(f"OneCycleSchedulerCB sets {k} itself (max_lr from fit's lr, total steps from "
                                 f"the fit's optimizer steps); leave it out or use "
                                 f"BatchSchedulerCB(partial(OneCycleLR, ...)).")
        super().__init__(partial(OneCycleLR, **kwargs))

    def build(self, opt: Optimizer, total: int) -> Any:
        return self.scheduler_func(opt, max_lr=[g['lr'] for g in opt.param_groups], total_steps=total)


class WarmupCosineSchedulerCB(FitSchedulerCB):
    '''A linear warmup to each param group's lr, then a cosine decay to `end_factor` times it, over the fit's optimizer
    steps: `FitSchedulerCB("cosine", warmup, end_factor)`

    `warmup`: a fraction of the fit in [0, 1) (a float, e.g. 0.1), or a number of optimizer steps (an int, e.g. 100).
    Step k of the warmup uses `k / warmup` of the lr (the first step 0, as Hugging Face's
    `get_cosine_schedule_with_warmup`).
    '''

    def __init__(self, warmup: float | int = 0.1, end_factor: float = 0.):
        super().__init__("cosine", warmup=warmup, end_factor=end_factor)

    def __repr__(self) -> str: return f"WarmupCosineSchedulerCB(warmup={self.warmup}, end_factor={self.end_factor})"
