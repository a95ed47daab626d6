"""The three cancel exceptions and the error that wraps a failing callback."""
from __future__ import annotations


class CancelBatchException(Exception):
    """Skip the rest of this batch (and its `after_batch`); `cleanup_batch` still runs."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch phase (and its `after_epoch`); `cleanup_epoch` still runs."""


class CancelFitException(Exception):
    """Stop the fit now (skipping `after_epoch` and `after_fit`); every `cleanup_*` still runs."""


CANCEL_EXCEPTIONS = (CancelBatchException, CancelEpochException, CancelFitException)


class CallbackError(RuntimeError):
    """A callback raised at an event; names the callback, the event, the epoch and the batch.

    The original exception is chained as `__cause__` and kept as `.original`.
    """

    def __init__(self, callback: str, event: str, where: str, original: BaseException):
        self.callback, self.event, self.where, self.original = callback, event, where, original
        super().__init__(f"{callback} failed at event '{event}' ({where}): "
                         f"{type(original).__name__}: {original}")


class CallbackSetupError(ValueError):
    """The set of callbacks cannot be run as given (duplicate names, conflicting step phases...)."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read safely or does not fit the trainer resuming from it."""
