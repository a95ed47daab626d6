"""The default device, the device a model is on, and moving nested batches between devices."""
from __future__ import annotations

import itertools
import sys
from typing import Any, overload

import torch
from torch import nn


def _default_device() -> torch.device:
    if torch.cuda.is_available(): return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available(): return torch.device("mps")
    return torch.device("cpu")


def_device: torch.device = _default_device()


def only_cpu_tensors() -> bool:
    """Whether every tensor this process holds is on the CPU, as far as torch can tell cheaply: no accelerator is
    available to it (`torch.accelerator`: CUDA or ROCm, MPS, XPU, MTIA, a registered backend) and torch_xla is not
    loaded. Meta tensors (shapes without data) are not counted. DeviceCB asks once a fit, not per batch."""
    accelerator = getattr(torch, "accelerator", None)  # torch 2.6 and later; before it, CUDA and MPS as def_device
    available = accelerator.is_available() if accelerator is not None else _default_device().type != "cpu"
    return not available and "torch_xla" not in sys.modules


def to_device(x: Any, device: torch.device | str = def_device, non_blocking: bool | None = None) -> Any:
    """Move the tensors in `x` (tensors nested in tuples, lists and dicts) to `device`; other leaves stay.

    `non_blocking` defaults to True for accelerators (it only helps host->device copies) and False for the CPU,
    since a copy to the host must be complete when it is read.
    """
    if non_blocking is None: non_blocking = torch.device(device).type != "cpu"
    if isinstance(x, torch.Tensor): return x.to(device, non_blocking=non_blocking)
    if isinstance(x, dict): return {k: to_device(v, device, non_blocking) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"): return type(x)(*(to_device(o, device, non_blocking) for o in x))
    if isinstance(x, (list, tuple)): return type(x)(to_device(o, device, non_blocking) for o in x)
    return x


def to_cpu(x: Any) -> Any:
    """`x` with its tensors detached and on the CPU (a float32 copy of float16/bfloat16 ones)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    if isinstance(x, dict): return {k: to_cpu(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"): return type(x)(*(to_cpu(o) for o in x))
    if isinstance(x, (list, tuple)): return type(x)(to_cpu(o) for o in x)
    return x


_CPU = torch.device("cpu")


@overload
def model_device(model: nn.Module) -> torch.device: ...
@overload
def model_device(model: nn.Module, default: None) -> torch.device | None: ...


def model_device(model: nn.Module, default: torch.device | None = _CPU) -> torch.device | None:
    """The device of the model's first parameter or buffer; `default` (the CPU) for a model with neither, which
    runs wherever its inputs are (pass None to tell that apart)."""
    for t in itertools.chain(model.parameters(), model.buffers()): return t.device
    return default
