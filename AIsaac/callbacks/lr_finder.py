"""`LRFinderCB`: grows the learning rate each batch and records the loss (`Trainer.lr_find` runs it; see
AIsaac.tools.lr_find)."""
from __future__ import annotations

import math
import numpy as np

from ..callback import Callback, Order
from ..runtime.args import whole_number
from ..exceptions import CancelEpochException, CancelFitException


class LRFinderCB(Callback):
    '''Grows the lr of every param group exponentially, from where fit set it, to `end_lr` over `num_it` training
    batches, and records lr and loss

    Every group's lr is multiplied by the same factor, so the groups keep their ratios (`lr=slice(...)`, timm's
    `lr_scale`); `mults` records the factor of each batch and `lrs` the fit's lr times it (the lr to give `fit`).
    Stops when the loss is not finite or the smoothed loss (exponential average with `beta`, debiased) exceeds
    `max_mult` times its lowest value (`diverged` is then True), or after `num_it` batches, the last at `end_lr`.
    Validation phases are skipped. Reading each batch's loss is a host-device sync: fine for this short search,
    and it is what lets it stop. `lrs`, `mults`, `losses` and `smooth_losses` hold one record per finished batch.
    '''

    order = Order.LAST  # after the other callbacks' after_batch have seen the batch at its lr
    lrs: list[float]
    losses: list[float]
    smooth_losses: list[float]

    def __init__(self, end_lr: float = 10., num_it: int = 100, max_mult: float = 4., beta: float = 0.98):
        num_it = whole_number("num_it", num_it, minimum=2, owner="LRFinderCB", what="batches from the start lr to end_lr")
        if not 0 <= beta < 1: raise ValueError(f"beta (loss smoothing) must be in [0, 1); got {beta!r}.")
        if not max_mult > 1: raise ValueError(f"max_mult (how far above its lowest the loss may rise) must be > 1; "
                                              f"got {max_mult!r}.")
        self.end_lr, self.num_it, self.max_mult, self.beta = float(end_lr), num_it, max_mult, beta
        self.lrs: list[float] = []
        self.mults: list[float] = []
        self.losses: list[float] = []
        self.smooth_losses: list[float] = []
        self.diverged = False

    def before_fit(self, trainer):
        self.lrs, self.mults, self.losses, self.smooth_losses, self.diverged = [], [], [], [], False
        self._avg, self._best = 0., math.inf
        self._groups = [(g, g['lr']) for opt in trainer.opts.values() for g in opt.param_groups]
        lr = trainer.lr
        self.start_lr = float(lr) if isinstance(lr, (int, float)) else max(base for _, base in self._groups)
        if not self.end_lr > self.start_lr:
            raise ValueError(f"LRFinderCB: end_lr={self.end_lr} must be above the start lr {self.start_lr}.")

    def before_epoch(self, trainer):
        if not trainer.training: raise CancelEpochException()

    def _mult(self, i: int) -> float: return (self.end_lr / self.start_lr) ** (i / (self.num_it - 1))

    def after_batch(self, trainer):
        loss = float(trainer.loss.detach().float())
        if not math.isfinite(loss):
            self.diverged = True
            raise CancelFitException()
        i = len(self.losses)
        self.mults.append(self._mult(i))
        self.lrs.append(self.start_lr * self.mults[-1])
        self.losses.append(loss)
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smooth = self._avg / (1 - self.beta ** len(self.losses))
        self.smooth_losses.append(smooth)
        if smooth > self.max_mult * self._best:
            self.diverged = True
            raise CancelFitException()
        if i + 1 >= self.num_it: raise CancelFitException()
        self._best = min(self._best, smooth)
        mult = self._mult(i + 1)
        for group, base in self._groups: group['lr'] = base * mult

    def suggestions(self) -> dict[str, float]:
        '''`lr_min`: a tenth of the lr at the lowest smoothed loss; `lr_steep`: the lr where the loss falls fastest
        (the first tenth of `num_it` batches left out)'''
        if not self.lrs: raise RuntimeError("LRFinderCB has no records: run a fit with it first (or trainer.lr_find()).")
        # As fastai's finder does, the first tenth of the search is left out: its smoothed loss rests on a few
        # batches, and their noise would pass for the steepest fall.
        skip = min(self.num_it // 10, max(0, len(self.lrs) - 3))
        smooth, lrs = np.array(self.smooth_losses[skip:]), np.array(self.lrs[skip:])
        i_min = int(np.argmin(smooth))
        # Steepest descent of the loss against log(lr), up to the minimum (past it the loss is diverging).
        if i_min >= 2: i_steep = int(np.argmin(np.gradient(smooth[:i_min + 1], np.log(lrs[:i_min + 1]))))
        else: i_steep = i_min
        return {'lr_min': float(lrs[i_min] / 10), 'lr_steep': float(lrs[i_steep])}

    def plot(self, suggestions: bool = True):
        '''Loss against lr (log scale): the raw losses faint, the smoothed ones solid, the suggestions marked'''
        import matplotlib.pyplot as plt
        from ..display.figure import ShownOnceFigure
        fig, ax = plt.subplots(figsize=(6, 4), FigureClass=ShownOnceFigure)  # a notebook shows it once
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
