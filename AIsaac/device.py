"""The default device and moving nested batches between devices."""
from __future__ import annotations

from typing import Any

import torch


def _default_device() -> torch.device:
    if torch.cuda.is_available(): return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available(): return torch.device("mps")
    return torch.device("cpu")


def_device: torch.device = _default_device()


def to_device(x: Any, device: torch.device | str = def_device) -> Any:
    """Move the tensors in `x` (tensors nested in tuples, lists and dicts) to `device`; other leaves stay."""
    if isinstance(x, torch.Tensor):
        # non_blocking only helps host->accelerator copies; a copy to the host must be complete when read.
        return x.to(device, non_blocking=torch.device(device).type != "cpu")
    if isinstance(x, dict): return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"): return type(x)(*(to_device(o, device) for o in x))
    if isinstance(x, (list, tuple)): return type(x)(to_device(o, device) for o in x)
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
