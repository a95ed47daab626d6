"""`TerminateOnNaNCB`: stops the fit at a non-finite loss and says at which epoch and batch."""
from __future__ import annotations

import logging

import torch

from ..callback import Callback, Order
from ..exceptions import CancelFitException
from ..runtime.args import whole_number
from ..runtime.messages import inform


class TerminateOnNaNCB(Callback):
    '''Stops the fit when the loss is nan or inf, saying at which epoch, batch and phase; `message` keeps it

    Reading the loss is a host-device sync. With `every=1` (default) the loss is checked at each batch, before
    backward, so a bad training batch never reaches the weights: one sync per batch. With `every=k` the check
    stays on the device (a flag and the first bad batch number) and is read every k batches and at the end of
    each phase: one sync per k batches, the batch reported is still exact, but up to k-1 more steps may run.
    The message is also logged as a warning on the "AIsaac" logger.
    '''

    order = Order.GUARD  # before the step callbacks' after_batch/backward work on a bad loss

    def __init__(self, every: int = 1):
        self.every = whole_number("every", every, owner="TerminateOnNaNCB", what="batches between checks")
        self.message: str | None = None

    def before_fit(self, trainer): self.message = None

    def before_epoch(self, trainer):
        if self.message is not None: raise CancelFitException()  # found at the end of the previous phase
        self._first_bad, self._count = None, 0

    def before_backward(self, trainer): self._check(trainer)

    def after_batch(self, trainer):
        if not trainer.training: self._check(trainer)  # training batches were checked before backward

    def _check(self, trainer) -> None:
        loss = trainer.loss.detach()
        if self.every == 1:
            if not torch.isfinite(loss).all(): self._stop(trainer, trainer.epoch, trainer.batch_num, loss)
            return
        # First bad batch number, or -1; kept on the device so that no batch waits for the check.
        bad = ~torch.isfinite(loss).all()
        if self._first_bad is None: self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        self._first_bad = torch.where(bad & (self._first_bad < 0), trainer.batch_num, self._first_bad)
        self._count += 1
        if self._count % self.every == 0: self._read(trainer)

    def _read(self, trainer, stop: bool = True) -> None:
        if self._first_bad is not None and (batch := int(self._first_bad)) >= 0:
            self._stop(trainer, trainer.epoch, batch, None, stop)

    def cleanup_epoch(self, trainer):
        # Raising here would skip the other callbacks' cleanup_epoch: the stop waits for the next phase to begin.
        if self.every > 1 and self.message is None: self._read(trainer, stop=False)

    def _stop(self, trainer, epoch: int, batch: int, loss, stop: bool = True) -> None:
        what = f"loss {float(loss.float().mean())}" if loss is not None else "a non-finite loss"
        self.message = (f"TerminateOnNaNCB: {what} at epoch {epoch}, batch {batch} "
                        f"({'training' if trainer.training else 'validation'}); stopped the fit.")
        inform(trainer, self.message, logging.WARNING)
        if stop: raise CancelFitException()
