"""`LRFinderCB`, which grows the learning rate each batch and records the loss, and `Trainer.lr_find`, the search
that runs it and leaves the trainer as it found it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..callback import Callback, Order
from ..exceptions import CancelEpochException, CancelFitException
from ..tools.sandbox import restoring
from .schedulers import BaseSchedulerCB


class LRFinderCB(Callback):
    '''Multiplies the lr of every param group by `lr_mult` after each training batch and records lr and loss

    Stops the fit when the loss is not finite, when the smoothed loss (exponential average with `beta`, debiased)
    exceeds `max_mult` times its lowest value, or after `max_iter` batches. Validation phases are skipped.
    Reading each batch's loss is a host-device sync: fine for this short search, and it is what lets it stop.
    `lrs`, `losses` and `smooth_losses` hold the records (one per finished batch).
    '''

    order = Order.LAST  # after the other callbacks' after_batch have seen the batch at its lr
    lrs: list[float]
    losses: list[float]
    smooth_losses: list[float]

    def __init__(self, lr_mult: float = 1.3, max_mult: float = 3., max_iter: int = 100, beta: float = 0.98):
        if not lr_mult > 1: raise ValueError(f"lr_mult must be > 1 (the lr grows by it each batch); got {lr_mult!r}.")
        if not 0 <= beta < 1: raise ValueError(f"beta (loss smoothing) must be in [0, 1); got {beta!r}.")
        self.lr_mult, self.max_mult, self.max_iter, self.beta = lr_mult, max_mult, max_iter, beta
        self.lrs, self.losses, self.smooth_losses = [], [], []

    def before_fit(self, trainer):
        self.lrs, self.losses, self.smooth_losses = [], [], []
        self._avg, self._best = 0., math.inf

    def before_epoch(self, trainer):
        if not trainer.training: raise CancelEpochException()

    def after_batch(self, trainer):
        loss = float(trainer.loss.detach().float())
        if not math.isfinite(loss): raise CancelFitException()
        self.lrs.append(trainer.opt.param_groups[0]['lr'])
        self.losses.append(loss)
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smooth = self._avg / (1 - self.beta ** len(self.losses))
        self.smooth_losses.append(smooth)
        if smooth > self.max_mult * self._best or len(self.lrs) >= self.max_iter: raise CancelFitException()
        self._best = min(self._best, smooth)
        for group in trainer.opt.param_groups: group['lr'] *= self.lr_mult

    def suggestions(self) -> dict[str, float]:
        '''`lr_min`: a tenth of the lr at the lowest smoothed loss; `lr_steep`: the lr where the loss falls fastest'''
        if not self.lrs: raise RuntimeError("LRFinderCB has no records: run a fit with it first (or trainer.lr_find()).")
        smooth, lrs = np.array(self.smooth_losses), np.array(self.lrs)
        i_min = int(np.argmin(smooth))
        # Steepest descent of the loss against log(lr), up to the minimum (past it the loss is diverging).
        if i_min >= 2: i_steep = int(np.argmin(np.gradient(smooth[:i_min + 1], np.log(lrs[:i_min + 1]))))
        else: i_steep = i_min
        return {'lr_min': float(lrs[i_min] / 10), 'lr_steep': float(lrs[i_steep])}

    def plot(self, suggestions: bool = True):
        '''Loss against lr (log scale): the raw losses faint, the smoothed ones solid, the suggestions marked'''
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses, alpha=0.3, label='loss')
        ax.plot(self.lrs, self.smooth_losses, label='smoothed loss')
        if suggestions and self.lrs:
            for (name, lr), marker in zip(self.suggestions().items(), 'ov'):
                y = float(np.interp(np.log(lr), np.log(self.lrs), self.smooth_losses))
                ax.plot([lr], [y], marker, label=f'{name} = {lr:.2e}')
        ax.set_xscale('log')
        ax.set_xlabel('learning rate (log scale)')
        ax.set_ylabel('loss')
        ax.legend()
        fig.tight_layout()
        return fig


@dataclass
class LRFindResult:
    """The search's suggestions (`lr_steep`, `lr_min`), its records and its plot (None without `show_plot`)."""
    lr_steep: float
    lr_min: float
    lrs: list[float] = field(repr=False)
    losses: list[float] = field(repr=False)
    fig: Any = field(default=None, repr=False)

    @property
    def suggestion(self) -> float: return self.lr_steep


class LRFindMixin:
    """`Trainer.lr_find`."""

    def lr_find(self, start_lr: float = 1e-7, lr_mult: float = 1.3, max_mult: float = 3., max_iter: int = 100,
                show_plot: bool = True) -> LRFindResult:
        """Train from `start_lr` with the lr multiplied by `lr_mult` each batch until the loss diverges (or `max_iter`
        batches), then put model, optimizer, callbacks, trainer state and random generators back as they were.

        Schedulers on the trainer are left out of the search, and so are the callbacks that take no part in side runs
        (checkpoints, loggers, save-best, early stopping, the epoch table; see `restoring`): nothing is written to disk.
        """
        finder = LRFinderCB(lr_mult=lr_mult, max_mult=max_mult, max_iter=max_iter)
        trainer: Any = self
        with restoring(trainer):
            trainer.remove_callbacks([cb for cb in trainer.cbs if isinstance(cb, BaseSchedulerCB)])  # they set the lr
            n_epochs = max(1, math.ceil(max_iter / max(1, len(trainer.dls.train))))
            trainer.fit(n_epochs, lr=start_lr, valid=False, callbacks=[finder])
        if not finder.lrs:
            raise RuntimeError(f"lr_find recorded no batch: the first loss at lr={start_lr} was not finite. "
                               f"Check the model and data with a plain fit, or start lower.")
        fig = finder.plot() if show_plot else None
        return LRFindResult(**finder.suggestions(), lrs=finder.lrs, losses=finder.losses, fig=fig)


# The search as a function of the trainer, `lr_find(trainer, ...)`, as well as the method `trainer.lr_find(...)`.
lr_find = LRFindMixin.lr_find
