"""`CoreCBs`: the group of callbacks nearly every fit uses."""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..runtime.placement import def_device
from .activation_stats import ActivationStatsCB
from .hooks_callback import all_modules
from .basic_train import BasicTrainCB
from .device import DeviceCB
from .metrics import MetricsCB
from .progress import ProgressCB


class CoreCBs:
    '''Device, basic training step, metrics, progress and activation statistics, added as one group'''

    def __init__(self, device: Any = def_device, module_filter: Callable[[nn.Module], Any] = all_modules, **metrics: Any):
        self.callbacks = [DeviceCB(device=device),
                          BasicTrainCB(),
                          MetricsCB(**metrics),
                          ProgressCB(),
                          ActivationStatsCB(module_filter)]

    def __repr__(self) -> str: return f"CoreCBs([{', '.join(map(repr, self.callbacks))}])"
