"""`DeviceCB`: puts the model and every batch on one device."""
from __future__ import annotations

import torch

from ..callback import Callback, Order
from ..runtime.placement import def_device, only_cpu_tensors, to_device


class DeviceCB(Callback):
    '''Callback to train on specific device: the model at `before_fit`, each batch (tensors nested in tuples, lists
    and dicts) at `before_batch`.

    On the CPU a batch whose tensors are all there already is passed on as it is, and when no accelerator is available
    to the process at all (`runtime.placement.only_cpu_tensors`, read at `before_fit`) every batch is, so the batches
    are not looked at.
    '''

    order = Order.DEVICE  # before any callback that reads the batch
    _non_blocking: bool | None = None  # set in __init__ (class defaults for a subclass whose __init__ sets only device)
    _on_cpu = False
    _all_on_cpu = False  # set by before_fit: the CPU is the only device with tensors, so nothing can move

    def __init__(self, device: torch.device | str = def_device):
        self.device = torch.device(device)
        self._non_blocking = self.device.type != "cpu"  # decided once, not per tensor per batch
        self._on_cpu = self.device.type == "cpu"

    def __repr__(self) -> str: return f"DeviceCB({str(self.device)!r})"

    def before_fit(self, trainer):
        '''Moves model to device'''
        if hasattr(trainer.model, 'to'): trainer.model.to(self.device)
        self._all_on_cpu = self._on_cpu and only_cpu_tensors()

    def before_batch(self, trainer):
        '''moves batch to device'''
        if self._all_on_cpu: return
        batch = trainer.batch
        if self._on_cpu:  # a tuple, list or dict of tensors already on the CPU: nothing to move
            kind = type(batch)
            items = batch if kind is tuple else batch.values() if kind is dict else batch if kind is list else ()
            for t in items:
                if not (isinstance(t, torch.Tensor) and t.is_cpu): break
            else:
                if items: return
        trainer.batch = to_device(batch, self.device, self._non_blocking)
