"""`materialize`: a model built on the meta device (and sharded with `fully_shard`) made real, each process
allocating and initializing only its own shards, so no process ever holds the whole model."""
from __future__ import annotations

from typing import Callable

import torch

from .placement import def_device


def materialize(model: torch.nn.Module, init: Callable[[torch.nn.Module], None] | None = None,
                device: torch.device | str | None = None) -> torch.nn.Module:
    """Allocate `model`'s parameters and buffers on `device` (default: AIsaac's `def_device`), uninitialized, then
    initialize them module by module: `init(module)` for every module when given (under `torch.no_grad()`), else each
    module's own `reset_parameters()`. Returns `model`.

    Build the model under `with torch.device("meta"):` and shard it (`fully_shard`) first: each process then allocates
    its shards only. A sharded parameter is a DTensor; `reset_parameters` draws each process's shard from that
    process's RNG, so the values differ from the same model built whole (`init` can give them exactly, see
    docs/scaling_out.md). A parameter or buffer that nothing initializes keeps whatever memory it got: give `init`
    for modules without `reset_parameters` (and for buffers computed at construction, such as rotary tables).
    """
    model.to_empty(device=torch.device(device) if device is not None else def_device)
    with torch.no_grad():
        for module in model.modules():
            if init is not None: init(module)
            elif callable(reset := getattr(module, "reset_parameters", None)): reset()
    return model
