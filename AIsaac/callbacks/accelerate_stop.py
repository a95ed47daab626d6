"""`AccelerateStopCB`, the member AccelerateCB adds to itself: it marks the phases and fits that ended normally and
raises a stop agreed with the other processes once every other callback has cleaned up."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..callback import Callback, Order
from ..exceptions import CancelFitException

if TYPE_CHECKING:
    from .accelerate import AccelerateCB


def runs_base_method(cls: type, base: type, name: str) -> bool:
    """Whether `cls.<name>` reaches `base`'s own: not overridden, or each override on the way calls the one it
    overrides (its code refers to `name`, as `super().<name>(trainer)` does)."""
    for klass in cls.__mro__:
        if klass is base: return True
        method = vars(klass).get(name)
        if method is not None and name not in getattr(getattr(method, '__code__', None), 'co_names', ()): return False
    return True


class AccelerateStopCB(Callback):
    '''Part of AccelerateCB: marks phases and fits that ended normally, and raises a stop agreed with the other
    processes at the end of the cleanup event, once every other callback has cleaned up'''

    order = Order.FINAL  # last

    def __init__(self, owner: AccelerateCB): self.owner = owner

    def before_epoch(self, trainer):
        '''Votes before the loader's first batch (several processes)'''
        self.owner._begin_phase()

    def before_batch(self, trainer):
        '''Votes before a forward that holds a collective (several processes)'''
        self.owner._vote_before_forward()

    def after_batch(self, trainer):
        '''Stops every process after this batch when one of them got a preemption signal'''
        if self.owner.preempt_agreed: raise CancelFitException()

    def after_epoch(self, trainer): self.owner.epoch_done = True
    def after_fit(self, trainer): self.owner.fit_done = True

    def _raise_pending(self) -> None:
        e, self.owner.pending = self.owner.pending, None
        if e is not None: raise e

    def cleanup_batch(self, trainer):
        '''Raises a stop agreed with the other processes'''
        self._raise_pending()

    def cleanup_epoch(self, trainer):
        '''Raises a stop agreed with the other processes'''
        self._raise_pending()

    def cleanup_fit(self, trainer):
        '''Raises a stop agreed with the other processes'''
        self._raise_pending()
