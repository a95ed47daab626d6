"""`counting_steps`: `trainer.step` counted from the optimizer's real steps; `StepWatch`: tells a callback when
`trainer.step` (the fit's optimizer steps) has moved, with no host sync; `phase_stop` and `validation_due`: where a
step budget (`max_steps`) and step-based validation (`valid_every`) end a training phase and validate.

Callbacks that act once per real optimizer step (an average of the weights, a schedule sized in steps) look at the
count after each training batch; with GradAccumCB most batches do not step, and a GradScaler may skip a step.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator


class StepWatch:
    """`moved(trainer)`: whether `trainer.step` changed since the last look. The first look after `reset` (at each
    fit's start, and after a checkpoint is loaded, whose fit continues the count) only takes the count."""

    def __init__(self) -> None: self.seen: int | None = None

    def reset(self) -> None: self.seen = None

    def moved(self, trainer: Any) -> bool:
        step, seen = trainer.step, self.seen
        self.seen = step
        return seen is not None and step != seen


@contextlib.contextmanager
def counting_steps(trainer: Any, optimizer: Any) -> Iterator[bool]:
    """While the block runs, each real step of `optimizer` (a torch optimizer's step post-hook) adds one to
    `trainer.step`; yields False then. An optimizer without that hook is not torch's: yields True, and the trainer
    counts a step per training batch itself."""
    hook = getattr(optimizer, "register_step_post_hook", None)
    if hook is None:
        yield True
        return

    def count(opt: Any, args: Any, kwargs: Any) -> None: trainer.step += 1

    handle = hook(count)
    try: yield False
    finally: handle.remove()


def phase_stop(trainer: Any) -> float:
    """The step count at which the training phase starting now pauses: the step budget, or the next validation point
    (`valid_every`) when the fit validates; infinity when neither applies."""
    stops = [trainer.max_steps] if trainer.max_steps is not None else []
    every = trainer.valid_every
    if every and trainer.run_valid: stops.append((trainer.step // every + 1) * every)
    return min(stops) if stops else math.inf


def validation_due(trainer: Any, stop_at: float, validated_at: int) -> bool:
    """Whether a validation follows the training phase that just ended (at `stop_at`, see `phase_stop`): at the step
    budget; with `valid_every`, at each validation point and at the fit's end when steps were taken since the last
    validation (`validated_at`); otherwise at the epoch's end."""
    if trainer.max_steps is not None and trainer.step >= trainer.max_steps: return True
    if not trainer.valid_every: return trainer.epoch_done
    last_epoch = trainer.n_epochs is not None and trainer.epoch == trainer.n_epochs - 1
    return trainer.step >= stop_at or (trainer.epoch_done and last_epoch and trainer.step > validated_at)
