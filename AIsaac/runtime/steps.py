"""`counting_steps`: `trainer.step` counted from the optimizer's real steps; `StepWatch`: tells a callback when `trainer.step` (the fit's optimizer steps) has moved, with no host sync.

Callbacks that act once per real optimizer step (an average of the weights, a schedule sized in steps) look at the
count after each training batch; with GradAccumCB most batches do not step, and a GradScaler may skip a step.
"""
from __future__ import annotations

import contextlib
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
