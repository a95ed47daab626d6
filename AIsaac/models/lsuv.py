"""`lsuv_init`: layer-sequential unit-variance initialisation (Mishkin & Matas, "All you need is a good init", 2015)."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn


class _Measured(Exception):
    """Raised by the hook to stop the forward pass once the measured output is known (later layers are not needed)."""


def _output_stats(model: nn.Module, measure: nn.Module, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    stats = []

    def hook(module, inputs, output):
        if not isinstance(output, torch.Tensor) or not output.is_floating_point():
            raise TypeError(f"lsuv_init: {type(module).__name__}'s output is {type(output).__name__}, not a "
                            f"floating-point tensor, so its mean and std cannot be set; measure another module.")
        out = output.detach().float()
        stats.append((out.mean(), out.std()))
        raise _Measured()

    handle = measure.register_forward_hook(hook)
    try: model(xb)
    except _Measured: pass
    finally: handle.remove()
    if not stats: raise ValueError(f"{type(measure).__name__} was not called when the model ran on xb; pass a module of this model.")
    return stats[0]


def _modules_arg(modules: Any) -> list[nn.Module]:
    if isinstance(modules, nn.Module): return [modules]
    if isinstance(modules, (str, bytes, torch.Tensor)) or not isinstance(modules, Iterable):
        raise TypeError(f"lsuv_init: modules must be a torch.nn.Module or an iterable of them (e.g. model.modules() or "
                        f"[model[0], model[2]]); got {type(modules).__name__}.")
    modules = list(modules)
    bad = [type(m).__name__ for m in modules if not isinstance(m, nn.Module)]
    if bad: raise TypeError(f"lsuv_init: every item of modules must be a torch.nn.Module; got {bad[0]}.")
    return modules


@torch.no_grad()
def lsuv_init(model: nn.Module, modules: nn.Module | Iterable[nn.Module], xb: torch.Tensor,
              measure: nn.Module | None = None, tol: float = 1e-3, max_iter: int = 10) -> list[tuple[float, float]]:
    """Rescale each module's weight (and shift its bias) until its output on batch `xb` has mean ~0 and std ~1.

    `modules`: one module, or several initialised in order, earliest first (`model.modules()` works: modules
    without a `weight` tensor, such as activations and containers, are skipped, as in the original). Each pass
    sets weight /= std and bias = (bias - mean) / std, which is exact for a linear layer's own output;
    `measure` (default: the module itself, only with a single module) is the module whose output is measured,
    e.g. the activation after a conv. Without a bias only the std is fixed. Stops when |mean| and |std - 1| are
    within `tol` or after `max_iter` passes. The model runs in its current train/eval mode (BatchNorm layers
    before the module update their running statistics in train mode). Returns the final (mean, std) of each module
    initialised (the skipped ones have none).
    """
    modules = _modules_arg(modules)
    if measure is not None and len(modules) != 1:
        raise ValueError("lsuv_init: `measure` only goes with a single module; call lsuv_init once per module.")
    if measure is not None and not isinstance(measure, nn.Module):
        raise TypeError(f"lsuv_init: measure must be a torch.nn.Module (the layer whose output is measured); got "
                        f"{type(measure).__name__}.")
    result = []
    for module in modules:
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        if not isinstance(weight, torch.Tensor): continue  # nothing to rescale (an activation, a container, ...)
        if not isinstance(bias, torch.Tensor): bias = None
        target = measure if measure is not None else module
        for _ in range(max_iter):
            mean, std = _output_stats(model, target, xb)
            if abs(float(std) - 1) <= tol and (bias is None or abs(float(mean)) <= tol): break
            weight.div_(std)
            if bias is not None: bias.sub_(mean).div_(std)
        mean, std = _output_stats(model, target, xb)
        result.append((float(mean), float(std)))
    return result
