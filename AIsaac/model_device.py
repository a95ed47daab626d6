"""`model_device`: the device a model's parameters (or buffers) are on."""
from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; the CPU for a model with neither."""
    for t in (*model.parameters(), *model.buffers()): return t.device
    return torch.device("cpu")
