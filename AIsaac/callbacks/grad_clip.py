"""`GradClipCB`: clips the gradients by total norm or by value just before each optimizer step."""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from ..callback import Callback


class GradClipCB(Callback):
    '''Clips the gradients before every optimizer step: by total norm (`max_norm`, `norm_type`) or by value (`max_value`)

    Give exactly one of `max_norm` or `max_value`. Clipping runs as a step pre-hook on each optimizer in `trainer.opts` (each clips its own
    parameters' gradients, by their own total norm), so it acts
    exactly when the optimizer really steps, whichever callback calls the step: once per `n` batches with
    GradAccumCB, and after MixedPrecisionCB's float16 scaler has unscaled the gradients (a step the scaler skips
    for inf/nan gradients is not clipped). `last_norm` is the total norm before the last norm clipping (on the device).
    '''

    def __init__(self, max_norm: float | None = None, norm_type: float | str = 2.0, max_value: float | None = None):
        if (max_norm is None) == (max_value is None):
            raise ValueError("GradClipCB needs exactly one of max_norm (clip the total gradient norm, e.g. "
                             "GradClipCB(1.0)) or max_value (clip each gradient element, e.g. GradClipCB(max_value=0.5)).")
        for name, value, example in (("max_norm", max_norm, "GradClipCB(1.0)"),
                                     ("max_value", max_value, "GradClipCB(max_value=0.5)"),
                                     ("norm_type", norm_type, "2.0, or float('inf') for the largest element")):
            if value is None or (name == "norm_type" and value == "inf"): continue  # torch takes 'inf' too
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or (
                    name != "norm_type" and not math.isfinite(value)):
                raise ValueError(f"GradClipCB: {name} must be a number > 0{' (finite)' * (name != 'norm_type')}, "
                                 f"e.g. {example}; got {value!r}.")
        self.max_norm, self.norm_type, self.max_value = max_norm, norm_type, max_value
        self.last_norm: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def before_fit(self, trainer):
        self._remove()
        self._handles = [opt.register_step_pre_hook(self._clip) for opt in trainer.opts.values()]

    def _clip(self, opt: torch.optim.Optimizer, args, kwargs) -> None:
        params = [p for group in opt.param_groups for p in group['params'] if p.grad is not None]
        if self.max_value is not None: nn.utils.clip_grad_value_(params, self.max_value)
        else: self.last_norm = nn.utils.clip_grad_norm_(params, self.max_norm, self.norm_type)  # type: ignore[arg-type]

    def cleanup_fit(self, trainer): self._remove()

    def _remove(self) -> None:
        for handle in self._handles: handle.remove()
        self._handles = []
