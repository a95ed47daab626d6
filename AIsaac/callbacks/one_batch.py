"""`OneBatchCB`: runs one batch, then stops the fit (a quick check that everything runs)."""
from __future__ import annotations

from ..callback import Callback, Order
from ..exceptions import CancelFitException


class OneBatchCB(Callback):
    '''Stops the fit after its first batch (training, or validation in a fit without training)'''

    order = Order.LAST  # after the other callbacks' after_batch (metrics, progress) have seen the batch

    def after_batch(self, trainer): raise CancelFitException()
