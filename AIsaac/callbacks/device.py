"""`DeviceCB`: puts the model and every batch on one device."""
from __future__ import annotations

import torch

from ..callback import Callback, Order
from ..runtime.placement import def_device, to_device


class DeviceCB(Callback):
    '''Callback to train on specific device'''

    order = Order.DEVICE  # before any callback that reads the batch

    def __init__(self, device: torch.device | str = def_device):
        self.device = torch.device(device)
        self._non_blocking = self.device.type != "cpu"  # decided once, not per tensor per batch

    def __repr__(self) -> str: return f"DeviceCB({str(self.device)!r})"

    def before_fit(self, trainer):
        '''Moves model to device'''
        if hasattr(trainer.model, 'to'): trainer.model.to(self.device)

    def before_batch(self, trainer):
        '''moves batch to device'''
        trainer.batch = to_device(trainer.batch, self.device, self._non_blocking)
