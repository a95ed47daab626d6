"""`lr_find(trainer, ...)` (`Trainer.lr_find`): a short fit under LRFinderCB, then everything put back."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..callbacks.lr_finder import LRFinderCB
from ..callbacks.progress import ProgressCB
from ..callbacks.schedulers import BaseSchedulerCB
from .sandbox import restoring
from ..runtime.messages import warn

if TYPE_CHECKING:
    from ..trainer import Trainer


@dataclass
class LRFindResult:
    """The search's suggestions (`lr_steep`, `lr_min`), its records, its plot (None without `show_plot`) and whether
    the loss diverged before the search ended (else the suggestions may be too low)."""
    lr_steep: float
    lr_min: float
    lrs: list[float] = field(repr=False)
    losses: list[float] = field(repr=False)
    fig: Any = field(default=None, repr=False)
    diverged: bool = True

    @property
    def suggestion(self) -> float: return self.lr_steep


# How many of the last raw losses must all lie above `max_mult` times the lowest smoothed loss for the search to count
# as diverged although the smoothed loss (an average over the last ~50 batches) has not caught up yet: one noisy
# batch is not a divergence, a run of them at the end is.
_RAW_BLOWUP_BATCHES = 3


def _raw_loss_blew_up(losses: list[float], smooth_losses: list[float], max_mult: float) -> bool:
    """True when the last `_RAW_BLOWUP_BATCHES` raw losses all exceed `max_mult` times the lowest smoothed loss."""
    if len(losses) < _RAW_BLOWUP_BATCHES: return False
    return all(loss > max_mult * min(smooth_losses) for loss in losses[-_RAW_BLOWUP_BATCHES:])


def lr_find(trainer: Trainer, start_lr: float = 1e-7, end_lr: float = 10., num_it: int = 100, max_mult: float = 4.,
            show_plot: bool = True) -> LRFindResult:
    """Train from `start_lr` with the lr of every group growing exponentially to `end_lr` over `num_it` batches,
    stopping early when the loss diverges; then put model, optimizers, callbacks, trainer state and random
    generators back as they were. Warns when the search reached `end_lr` before the loss diverged; a search whose
    raw loss plainly blew up at its end (its last batches all above `max_mult` times the lowest smoothed loss)
    diverged, even where the smoothed loss, which lags, stayed under the bound.

    Quiet: the schedulers (they would set the lr) and ProgressCB (no table, no bars) are left out of the search, and
    so are the callbacks that take no part in side runs (checkpoints, loggers, save-best, early stopping; see
    `restoring`): nothing is written to disk.
    """
    finder = LRFinderCB(end_lr=end_lr, num_it=num_it, max_mult=max_mult)
    with restoring(trainer):
        trainer.remove_callbacks([cb for cb in trainer.cbs if isinstance(cb, (BaseSchedulerCB, ProgressCB))])
        # A step budget rather than epochs: the search works on a loader without a length (a stream) too.
        trainer.fit(None, lr=start_lr, valid=False, callbacks=[finder], max_steps=num_it)
    if not finder.lrs:
        raise RuntimeError(f"lr_find recorded no batch: the first loss at lr={start_lr} was not finite. "
                           f"Check the model and data with a plain fit, or start lower.")
    diverged = finder.diverged or _raw_loss_blew_up(finder.losses, finder.smooth_losses, max_mult)
    if not diverged:
        warn(f"lr_find ended at lr={finder.lrs[-1]:.3g} after {len(finder.lrs)} batches before the loss "
             f"diverged, so the suggestions may be too low: search further with a larger end_lr (or "
             f"num_it).", UserWarning)  # the user's trainer.lr_find(...) line
    fig = finder.plot() if show_plot else None
    return LRFindResult(**finder.suggestions(), lrs=finder.lrs, losses=finder.losses, fig=fig, diverged=diverged)
