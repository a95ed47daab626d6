"""The exceptions of the trainer: the three cancels (`CancelBatchException`, `CancelEpochException`,
`CancelFitException`, together `CANCEL_EXCEPTIONS`), `CallbackError` for a failing callback (built by `callback_error`,
or a note added by `add_note`), `CallbackSetupError` for a set of callbacks that cannot run, and `CheckpointError` for
a checkpoint that cannot be read or does not fit."""
from __future__ import annotations

from typing import Any


class CancelBatchException(Exception):
    """Skip the rest of this batch (and its `after_batch`); `cleanup_batch` still runs."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch phase (and its `after_epoch`); `cleanup_epoch` still runs."""


class CancelFitException(Exception):
    """Stop the fit now (skipping `after_epoch` and `after_fit`); every `cleanup_*` still runs."""


CANCEL_EXCEPTIONS = (CancelBatchException, CancelEpochException, CancelFitException)


class CallbackError(RuntimeError):
    """A callback raised at an event; names the callback, the event, the epoch and the batch.

    The original exception is chained as `__cause__` and kept as `.original`. The error raised out of `fit` is also an
    instance of the original's class (see `callback_error`), so either class catches it.
    """

    def __init__(self, callback: str, event: str, where: str, original: BaseException):
        self.callback, self.event, self.where, self.original = callback, event, where, original
        super().__init__(f"{callback} failed at event '{event}' ({where}): "
                         f"{type(original).__name__}: {original}")


_TYPED: dict[type, type | None] = {}


def add_note(error: BaseException, note: str) -> None:
    """`error.add_note(note)` (PEP 678); on Python 3.10, which lacks it, the note is kept in `__notes__` all the same."""
    if hasattr(error, "add_note"): error.add_note(note)
    else: error.__dict__.setdefault("__notes__", []).append(note)


def callback_error(callback: str, event: str, where: str, original: BaseException) -> BaseException:
    """The error to raise for `original`, raised by `callback` at `event`: a CallbackError that is also an instance
    of the original's class, so `except TrialPruned` (or `except ValueError`) still catches it after `fit`.

    Where the two classes cannot be combined (a built-in with its own memory layout, such as OSError), the original
    itself is raised with a note (PEP 678) naming the callback, the event and the place.
    """
    cls = type(original)
    if cls not in _TYPED:
        try:
            _TYPED[cls] = type(f"CallbackError[{cls.__qualname__}]", (CallbackError, cls),
                               {"__module__": __name__, "__str__": BaseException.__str__,
                                "__doc__": f"CallbackError for a callback that raised {cls.__qualname__}."})
        except TypeError: _TYPED[cls] = None
    typed = _TYPED[cls]
    if typed is None:
        add_note(original, f"Raised by {callback} at event '{event}' ({where}).")
        return original
    error: Any = BaseException.__new__(typed)
    error.__dict__.update(getattr(original, "__dict__", {}))
    CallbackError.__init__(error, callback, event, where, original)
    return error


class CallbackSetupError(ValueError):
    """The set of callbacks cannot be run as given (duplicate names, conflicting step phases...)."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read safely or does not fit the trainer resuming from it."""
