"""The declared list of events (the only method names the trainer ever calls on a callback), and the names other
libraries use for them (`FOREIGN_EVENT_NAMES`)."""
from __future__ import annotations

import difflib

FIT_EVENTS = ("before_fit", "after_fit", "cleanup_fit")
EPOCH_EVENTS = ("before_epoch", "after_epoch", "cleanup_epoch")
# The step phases: each is done by exactly one callback unless a callback claims it (see `Callback.claims`).
STEP_PHASES = ("predict", "get_loss", "before_backward", "backward", "step", "zero_grad")
BATCH_EVENTS = ("before_batch", *STEP_PHASES, "after_batch", "cleanup_batch")
EVENTS = (*BATCH_EVENTS, *EPOCH_EVENTS, *FIT_EVENTS)
# Phases a callback may claim: before_backward is an ordinary hook, these are work done once per batch.
EXCLUSIVE_PHASES = ("predict", "get_loss", "backward", "step", "zero_grad")


# Method names other libraries (fastai, Keras, Lightning) use, and the AIsaac event that does the same job.
FOREIGN_EVENT_NAMES = {
    "before_train": "before_epoch (with `if trainer.training:`)",
    "after_train": "after_epoch (with `if trainer.training:`)",
    "before_validate": "before_epoch (with `if not trainer.training:`)",
    "after_validate": "after_epoch (with `if not trainer.training:`)",
    "after_pred": "get_loss (runs right after predict) or after_batch",
    "after_loss": "before_backward",
    "after_backward": "step (with `observes = ('step',)` and an order below the training step's)",
    "before_step": "step (with `observes = ('step',)` and an order below the training step's)",
    "after_step": "zero_grad (with `observes = ('zero_grad',)`) or after_batch",
    "after_cancel_batch": "cleanup_batch", "after_cancel_epoch": "cleanup_epoch", "after_cancel_fit": "cleanup_fit",
    "on_train_begin": "before_fit", "on_train_end": "cleanup_fit", "on_epoch_begin": "before_epoch",
    "on_epoch_end": "after_epoch", "on_train_batch_begin": "before_batch", "on_train_batch_end": "after_batch",
    "on_batch_end": "after_batch", "on_batch_begin": "before_batch",
}


def nearest_event(name: str, events: tuple[str, ...] = EVENTS) -> str | None:
    """The declared event that `name` most likely misspells, or None when it resembles none."""
    if name in events: return None
    match = difflib.get_close_matches(name, events, n=1, cutoff=0.8)
    return match[0] if match else None
