"""`CompileCB`: `torch.compile` of the model for the fit, falling back to the plain model where compile is unavailable."""
from __future__ import annotations

import warnings
from typing import Any

import torch

from ..callback import Callback, Order


class CompileCB(Callback):
    '''Replaces `trainer.model` by `torch.compile(model, **compile_kwargs)` at `before_fit`; puts the original back at `cleanup_fit`

    Where torch.compile is missing or refuses (an unsupported Python or platform), it warns and the fit runs
    the plain model. Compilation itself happens at the first batch; with `fallback=True` (default) errors there
    also fall back to running the plain code (torch._dynamo's `suppress_errors`, set for this fit only) and are
    logged by torch. `compiled` tells whether the last fit ran a compiled model.
    '''

    order = Order.STEP_WRAPPER  # after DeviceCB has moved the model, so compile sees it on its device
    _suppress: bool | None  # torch._dynamo's suppress_errors before this fit set it

    def __init__(self, fallback: bool = True, **compile_kwargs: Any):
        self.fallback, self.compile_kwargs = fallback, compile_kwargs
        self.original, self.compiled, self._suppress = None, False, None

    def before_fit(self, trainer):
        self.original, self.compiled = trainer.model, False
        compile_fn = getattr(torch, 'compile', None)
        if compile_fn is None:
            return warnings.warn(f"CompileCB: this torch ({torch.__version__}) has no torch.compile; training the "
                                 f"model uncompiled. Install torch >= 2.0 to compile.", RuntimeWarning, stacklevel=2)
        try: compiled = compile_fn(trainer.model, **self.compile_kwargs)
        except Exception as e:
            return warnings.warn(f"CompileCB: torch.compile failed ({type(e).__name__}: {e}); training the model "
                                 f"uncompiled. Check the compile arguments {self.compile_kwargs}, or remove CompileCB.",
                                 RuntimeWarning, stacklevel=2)
        if self.fallback: self._set_suppress(True)
        trainer.model, self.compiled = compiled, True

    def _set_suppress(self, on: bool) -> None:
        import torch._dynamo
        if on: self._suppress, torch._dynamo.config.suppress_errors = torch._dynamo.config.suppress_errors, True
        elif self._suppress is not None: torch._dynamo.config.suppress_errors, self._suppress = self._suppress, None

    def cleanup_fit(self, trainer):
        self._set_suppress(False)
        if self.original is not None: trainer.model = self.original
        self.original = None
