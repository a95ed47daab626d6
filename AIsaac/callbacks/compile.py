"""`CompileCB`: `torch.compile` of the model for the fit, falling back to the plain model where compile is unavailable."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..callback import Callback, Order, callback_name
from ..runtime.messages import warn
from .hooks_callback import HooksCallback


class CompileCB(Callback):
    '''Replaces `trainer.model` by `torch.compile(model, **compile_kwargs)` at `before_fit`; puts the original back at `cleanup_fit`

    Where torch.compile is missing or refuses (an unsupported Python or platform), it warns and the fit runs
    the plain model. Compilation itself happens at the first batch; with `fallback=True` (default) errors there
    also fall back to running the plain code (torch._dynamo's `suppress_errors`, set for this fit only) and are
    logged by torch. `compiled` tells whether the last fit ran a compiled model. It warns when forward hooks will
    run in the compiled model (a `HooksCallback` such as `ActivationStatsCB`, or hooks put on the model by hand):
    torch.compile then recompiles and traces the hooks, which can make the fit slower than without CompileCB.
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
            return warn(f"CompileCB: this torch ({torch.__version__}) has no torch.compile; training the model "
                        f"uncompiled. Install torch >= 2.0 to compile.", RuntimeWarning)
        try: compiled = compile_fn(trainer.model, **self.compile_kwargs)
        except Exception as e:
            return warn(f"CompileCB: torch.compile failed ({type(e).__name__}: {e}); training the model uncompiled. "
                        f"Check the compile arguments {self.compile_kwargs}, or remove CompileCB.", RuntimeWarning)
        self._warn_about_hooks(trainer)
        if self.fallback: self._set_suppress(True)
        trainer.model, self.compiled = compiled, True

    def _warn_about_hooks(self, trainer) -> None:
        # Measured on a CPU (torch 2.14, backend "eager"): ActivationStatsCB's hooks, switched on and off between
        # phases, took a small MLP from 2 graphs to the recompile limit (8) and the fit from 4 s to 11 s.
        hookers = [callback_name(cb) for cb in trainer.cbs
                   if isinstance(cb, HooksCallback) and (cb.on_train or cb.on_valid)]
        model = trainer.model
        hooked = [n or type(m).__name__ for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks] \
            if isinstance(model, nn.Module) else []
        if not hookers and not hooked: return
        who = [f"{' and '.join(hookers)} (forward hooks on the model's modules)"] if hookers else []
        if hooked: who.append(f"forward hooks already on {', '.join(hooked[:3])}{', ...' if len(hooked) > 3 else ''}")
        fix = (f"leave {' and '.join(hookers)} out of the fits you compile (e.g. "
               f"trainer.remove_callbacks(trainer.{hookers[0]}))" if hookers else "remove those hooks")
        warn(f"CompileCB: {'; '.join(who)} will run inside the compiled model, so torch.compile recompiles and traces "
             f"them; the fit may be slower than without CompileCB. For speed, {fix}, or fit without CompileCB.",
             RuntimeWarning)

    def _set_suppress(self, on: bool) -> None:
        import torch._dynamo
        if on: self._suppress, torch._dynamo.config.suppress_errors = torch._dynamo.config.suppress_errors, True
        elif self._suppress is not None: torch._dynamo.config.suppress_errors, self._suppress = self._suppress, None

    def cleanup_fit(self, trainer):
        self._set_suppress(False)
        if self.original is not None: trainer.model = self.original
        self.original = None
