"""`MixedPrecisionCB`: autocast for predict/get_loss, and a gradient scaler for float16."""
from __future__ import annotations

import types
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import torch

from ..callback import Callback, Order
from ..runtime.placement import model_device


class MixedPrecisionCB(Callback):
    '''Runs predict and get_loss under `torch.autocast(device_type, dtype)`; for float16 also scales the loss

    bfloat16 (the default; works on CPU) needs no scaler and changes no step phase. float16 uses a
    `torch.amp.GradScaler` (`scaler_kwargs` go to it), shown to other callbacks as `trainer.grad_scaler` during
    the fit (None for bfloat16): this callback claims `backward` to backpropagate the scaled loss (`trainer.loss`
    stays the true loss, for metrics), and for the fit makes each optimizer's `step()` (every one in
    `trainer.opts`) the scaler's step (unscale, skip when a gradient is inf/nan, step). So whichever callback
    steps (BasicTrainCB, GradAccumCB, a GAN's, yours) steps correctly, and GradClipCB, a step pre-hook, sees
    unscaled gradients. The scale is updated once after the batch's steps (after_batch; before the next batch
    for a step taken at an epoch's end), as torch advises for several optimizers.
    `device_type` defaults to the type of the model's device at `before_fit`.
    '''

    order = Order.STEP_WRAPPER  # after DeviceCB has moved model and batch; before others' after_batch reads the preds
    # Class defaults, so a subclass with its own __init__ works; one with its own before_fit gets the fit's setup
    # (device, scaler, patched steps) at its first batch instead.
    dtype: torch.dtype = torch.bfloat16
    device_type: str | None = None
    scaler_kwargs: Mapping[str, Any] = MappingProxyType({})
    scaler: torch.amp.GradScaler | None = None
    device: str | None = None
    _autocast: Any = None
    _patched: Sequence[torch.optim.Optimizer] = ()  # the optimizers whose step this fit wraps
    _pending, _fit = False, None

    def __init__(self, dtype: torch.dtype = torch.bfloat16, device_type: str | None = None, **scaler_kwargs: Any):
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"MixedPrecisionCB takes dtype=torch.bfloat16 or torch.float16; got {dtype!r}.")
        self.dtype, self.device_type, self.scaler_kwargs = dtype, device_type, scaler_kwargs
        self.scaler, self._autocast, self._patched, self._pending = None, None, (), False

    # Read from the dtype, so they follow a subclass that sets it in its own __init__.
    @property
    def claims(self) -> tuple[str, ...]:  # type: ignore[override]
        return ('backward',) if self.dtype is torch.float16 else ()

    @property
    def backward(self) -> Callable[[Any], None] | None:
        """bfloat16 leaves backward to the step callback (the dispatcher skips a None method)."""
        return self._scaled_backward if self.dtype is torch.float16 else None

    def before_fit(self, trainer): self._setup(trainer)

    def _setup(self, trainer) -> None:
        self._fit = trainer.setup  # new at each fit
        self.device = self.device_type or model_device(trainer.model).type
        self.scaler = torch.amp.GradScaler(self.device, **self.scaler_kwargs) if self.dtype is torch.float16 else None
        trainer.grad_scaler = self.scaler
        self._pending, self._patched = False, ()
        if self.scaler is not None:
            for opt in trainer.opts.values(): self._patch_step(opt)

    def _ready(self, trainer) -> None:
        if self._fit is not trainer.setup: self._setup(trainer)  # before_fit was replaced

    def _patch_step(self, opt: torch.optim.Optimizer) -> None:
        plain_step, scaler, inside = opt.step, self.scaler, False

        def scaled_step(opt, *args, **kwargs):
            # scaler.step(opt) unscales, checks for inf/nan, then calls opt.step() itself: that inner call is the plain one.
            nonlocal inside
            if inside: return plain_step(*args, **kwargs)
            inside = True
            try:
                out = scaler.step(opt, *args, **kwargs)
                self._pending = True  # the scale is updated once all of the batch's optimizers have stepped
                return out
            finally: inside = False

        # A bound method (torch's lr schedulers rewrap `opt.step.__func__`), set on this optimizer only and
        # removed at cleanup_fit; the optimizer's class is untouched.
        opt.step = types.MethodType(scaled_step, opt)  # type: ignore[method-assign]
        self._patched = (*self._patched, opt)

    def _update(self) -> None:
        if self._pending and self.scaler is not None:
            self.scaler.update()
            self._pending = False

    def before_batch(self, trainer):
        self._ready(trainer)
        self._update()  # a step taken after the last batch (GradAccumCB's at an epoch's end)
        self._autocast = torch.autocast(self.device, dtype=self.dtype)
        self._autocast.__enter__()

    def _exit(self) -> None:
        if self._autocast is not None:
            self._autocast.__exit__(None, None, None)
            self._autocast = None

    # Autocast covers predict and get_loss only: backward runs outside it, as torch.autocast's docs advise.
    def before_backward(self, trainer): self._exit()
    def after_batch(self, trainer):
        self._exit()
        self._update()
    def cleanup_batch(self, trainer): self._exit()

    def _scaled_backward(self, trainer):
        """Backpropagates the scaled loss (float16)"""
        self._ready(trainer)
        self.scaler.scale(trainer.loss).backward()

    # Saved by CheckpointCB: a resumed float16 fit goes on with the loss scale it had reached.
    def state_dict(self) -> dict[str, Any]:
        """The gradient scaler's state (empty for bfloat16)."""
        self._update()  # saved between steps: the scale as the next batch will use it
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the scaler built at before_fit to `state`."""
        if self.scaler is not None and "scaler" in state: self.scaler.load_state_dict(state["scaler"])

    def cleanup_fit(self, trainer):
        self._exit()
        if self.scaler is not None: self._update()
        for opt in self._patched: vars(opt).pop('step', None)
        self._patched = ()
        trainer.grad_scaler = None
