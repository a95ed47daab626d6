"""`FrozenModulesCB`: modules a fit uses but does not train (a teacher, a VAE, a text encoder), on the model's device,
in eval mode, without gradients, reachable as trainer attributes."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..callback import Callback
from ..order import Order
from ..runtime.placement import model_device


class FrozenModulesCB(Callback):
    '''Hands the fit modules it does not train: `FrozenModulesCB(teacher=teacher)` sets `trainer.teacher` for the fit

    ```python
    class DistillCB(Callback):  # a step callback of yours reads trainer.teacher
        claims = ('get_loss',)
        def get_loss(self, trainer):
            soft = F.softmax(trainer.teacher(*trainer.xb) / 2, -1)
            trainer.loss = F.cross_entropy(trainer.preds, trainer.yb[0]) + F.cross_entropy(trainer.preds / 2, soft)
    trainer.fit(3, callbacks=[FrozenModulesCB(teacher=teacher), DistillCB()])
    ```

    At `before_fit`, once DeviceCB or AccelerateCB has placed the model, each module goes to the model's device (every
    process's copy under AccelerateCB; not wrapped in DDP, as nothing trains it), in `dtype` when given (a VAE in
    bfloat16 beside a model trained in float32; autocast reaches it only where the step runs under it), in eval mode with `requires_grad`
    off; each phase keeps it in eval mode (also a submodule of the model, whose `model.train()` each training phase
    would switch). They are not the model's parameters, so no optimizer holds them and checkpoints leave them out;
    `save=True` (or a list of names) puts their `state_dict` in this callback's state, which CheckpointCB saves and
    `fit(resume_from=...)` loads. At the end of the fit the attributes are removed and each module's mode and
    `requires_grad` flags are as they were (it keeps its device and dtype). A name the trainer already has is refused.
    '''

    # After DeviceCB and AccelerateCB placed the model (its device is theirs); before any step reads the modules.
    order = Order.DEVICE + 1

    def __init__(self, *, save: bool | list[str] = False, dtype: torch.dtype | None = None, **modules: nn.Module):
        if not modules:
            raise TypeError("FrozenModulesCB takes the modules by the names the trainer gets them as, e.g. "
                            "FrozenModulesCB(teacher=teacher_model) for trainer.teacher.")
        for name, m in modules.items():
            if not isinstance(m, nn.Module):
                raise TypeError(f"FrozenModulesCB: {name} must be a torch.nn.Module; got {type(m).__name__}.")
        saved = list(modules) if save is True else list(save or [])
        unknown = [n for n in saved if n not in modules]
        if unknown:
            raise ValueError(f"FrozenModulesCB: save names {', '.join(unknown)}, which are not among its modules "
                             f"({', '.join(modules)}).")
        self.modules, self.saved, self.dtype = modules, saved, dtype
        self._kept: dict[str, tuple[bool, list[bool]]] = {}

    def __repr__(self) -> str:
        return f"FrozenModulesCB({', '.join(f'{n}={type(m).__name__}' for n, m in self.modules.items())})"

    def before_fit(self, trainer):
        taken = [n for n in self.modules if hasattr(trainer, n)]
        if taken:
            raise ValueError(f"FrozenModulesCB: trainer.{taken[0]} is already the trainer's (an attribute or a "
                             f"callback's name); give the module another name.")
        device = model_device(trainer.model)
        for name, m in self.modules.items():
            self._kept[name] = (m.training, [p.requires_grad for p in m.parameters()])
            m.to(device=device, dtype=self.dtype).eval().requires_grad_(False)
            setattr(trainer, name, m)

    def before_epoch(self, trainer):
        # The trainer's model.train() of a training phase reaches a module that is a submodule of the model.
        for m in self.modules.values():
            if m.training: m.eval()

    def cleanup_fit(self, trainer):
        for name, m in self.modules.items():
            if getattr(trainer, name, None) is m: delattr(trainer, name)
            if name in self._kept:
                training, flags = self._kept.pop(name)
                m.train(training)
                for p, flag in zip(m.parameters(), flags): p.requires_grad_(flag)

    def state_dict(self) -> dict[str, Any]:
        """The `state_dict` of each module asked for by `save` (empty by default: checkpoints leave them out)."""
        return {name: self.modules[name].state_dict() for name in self.saved}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, s in state.items(): self.modules[name].load_state_dict(s)
