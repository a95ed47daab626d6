"""`restoring(trainer)`: run something that fits (a search, a look at a batch) and put everything back afterwards.

The one put-back helper: `lr_find`, `show_image_batch` and `summarize_model` run inside it. It restores the model's
weights, buffers, train/eval modes, gradients and which parameters are frozen, the optimizers' states, every callback's
attributes, the trainer's own attributes, and the random number generators, whether the block ends normally or with an
exception.

Inside the block the callbacks that declare `side_runs = False` (those that write files or take decisions:
checkpoints, loggers, save-best, early stopping, the epoch table) are left out, so a side run touches nothing on disk.
"""
from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Any, Iterator

import torch
from torch import nn

from ..runtime.rng import get_rng_state, set_rng_state

if TYPE_CHECKING:
    from ..trainer import Trainer


def _keep_by_reference(v: Any) -> bool:
    # Things a callback points to but does not own, or that cannot be copied safely (open progress bars, hooks).
    return (isinstance(v, (nn.Module, torch.optim.Optimizer, torch.utils.hooks.RemovableHandle))
            or type(v).__module__.split('.')[0] == 'tqdm')


def _copy_state(state: dict, memo: dict) -> dict:
    out = {}
    for k, v in state.items():
        if _keep_by_reference(v): out[k] = v
        else:
            try: out[k] = copy.deepcopy(v, memo)
            except Exception: out[k] = v  # not copyable: keep the object itself
    return out


def _slot_names(obj: Any) -> tuple[str, ...]:
    """The names of `obj`'s slots (the Trainer keeps its documented attributes in slots), its subclasses' too."""
    names = []
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else [n for n in slots if n not in ("__dict__", "__weakref__")]
    return tuple(names)


_UNSET = object()  # a slot that had no value


class Snapshot:
    """Model weights, buffers, modes and grads; the optimizer; callbacks' and trainer's attributes; the RNGs."""

    def __init__(self, trainer: Trainer):
        self.trainer, model = trainer, trainer.model
        self.trainer_slots = {n: getattr(trainer, n, _UNSET) for n in _slot_names(trainer)}
        self.trainer_state = dict(vars(trainer))
        # The callback plan is immutable (a change makes a new one), so keeping the reference keeps the callback set.
        self.model_state = copy.deepcopy(model.state_dict())
        self.modes = [m.training for m in model.modules()]
        self.grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
        self.opts = [(opt, copy.deepcopy(opt.state_dict())) for opt in trainer.opts.values()]
        self.requires_grad = [p.requires_grad for p in model.parameters()]
        # The memo makes the copies keep pointing at the live trainer, model, parameters, optimizers and loaders.
        memo = {id(o): o for o in (trainer, model, *trainer.opts.values(), trainer.dls, *model.parameters(),
                                   *model.buffers())}
        self.cb_states = [(cb, _copy_state(vars(cb), memo)) for cb in trainer.cbs if hasattr(cb, '__dict__')]
        self.rng = get_rng_state()

    def restore(self) -> None:
        trainer = self.trainer
        for name, value in self.trainer_slots.items():
            if value is not _UNSET: setattr(trainer, name, value)
            elif hasattr(trainer, name): delattr(trainer, name)
        model = trainer.model
        vars(trainer).clear()
        vars(trainer).update(self.trainer_state)
        model.load_state_dict(self.model_state)
        for m, mode in zip(model.modules(), self.modes): m.training = mode
        for p, g, r in zip(model.parameters(), self.grads, self.requires_grad):
            p.grad = g
            p.requires_grad_(r)
        for opt, state in self.opts: opt.load_state_dict(state)
        for cb, state in self.cb_states:
            vars(cb).clear()
            vars(cb).update(state)
        set_rng_state(self.rng)


@contextlib.contextmanager
def restoring(trainer: Trainer) -> Iterator[Trainer]:
    """Within the block the trainer may fit, add and remove callbacks; on leaving it, all is as it was before.

    The callbacks with `side_runs = False` are off the trainer within the block (see the module docstring)."""
    snapshot = Snapshot(trainer)
    try:
        trainer.remove_callbacks([cb for cb in trainer.cbs if not getattr(cb, "side_runs", True)])
        yield trainer
    finally: snapshot.restore()
