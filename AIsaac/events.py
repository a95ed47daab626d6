"""The declared list of events: the only method names the trainer ever calls on a callback."""
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


def nearest_event(name: str, events: tuple[str, ...] = EVENTS) -> str | None:
    """The declared event that `name` most likely misspells, or None when it resembles none."""
    if name in events: return None
    match = difflib.get_close_matches(name, events, n=1, cutoff=0.8)
    return match[0] if match else None
