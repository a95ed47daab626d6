"""`Trainer.lr_find`: a learning-rate search that leaves the trainer exactly as it found it."""
from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .callbacks.lr_finder import LRFinderCB
from .callbacks.schedulers import BaseSchedulerCB
from .trainer import Trainer


@dataclass
class LRFindResult:
    """The search's suggestions (`lr_steep`, `lr_min`), its records and its plot (None without `show_plot`)."""
    lr_steep: float
    lr_min: float
    lrs: list[float] = field(repr=False)
    losses: list[float] = field(repr=False)
    fig: Any = field(default=None, repr=False)

    @property
    def suggestion(self) -> float: return self.lr_steep


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


class _Snapshot:
    """Model weights, buffers, modes and grads; the optimizer; callbacks' and trainer's attributes; the RNGs."""

    def __init__(self, trainer: Trainer):
        self.trainer, model = trainer, trainer.model
        self.trainer_state = dict(vars(trainer))
        self.model_state = copy.deepcopy(model.state_dict())
        self.modes = [m.training for m in model.modules()]
        self.grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
        self.opt = trainer.opt
        self.opt_state = copy.deepcopy(trainer.opt.state_dict()) if trainer.opt is not None else None
        # The memo makes the copies keep pointing at the live trainer, model, parameters, optimizer and loaders.
        memo = {id(o): o for o in (trainer, model, trainer.opt, trainer.dls, *model.parameters(), *model.buffers())}
        self.cb_states = [(cb, _copy_state(vars(cb), memo)) for cb in trainer.cbs if hasattr(cb, '__dict__')]
        self.rng = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
                    random.getstate(), np.random.get_state())

    def restore(self) -> None:
        trainer, model = self.trainer, self.trainer_state['model']
        vars(trainer).clear()
        vars(trainer).update(self.trainer_state)
        model.load_state_dict(self.model_state)
        for m, mode in zip(model.modules(), self.modes): m.training = mode
        for p, g in zip(model.parameters(), self.grads): p.grad = g
        if self.opt is not None: self.opt.load_state_dict(self.opt_state)
        for cb, state in self.cb_states:
            vars(cb).clear()
            vars(cb).update(state)
        cpu, cuda, py, np_state = self.rng
        torch.set_rng_state(cpu)
        if cuda is not None: torch.cuda.set_rng_state_all(cuda)
        random.setstate(py)
        np.random.set_state(np_state)


def lr_find(self: Trainer, start_lr: float = 1e-7, lr_mult: float = 1.3, max_mult: float = 3., max_iter: int = 100,
            show_plot: bool = True) -> LRFindResult:
    """Train from `start_lr` with the lr multiplied by `lr_mult` each batch until the loss diverges (or `max_iter`
    batches), then put model, optimizer, callbacks, trainer state and random generators back as they were.

    Schedulers on the trainer are left out of the search. Nothing is written to disk.
    """
    finder = LRFinderCB(lr_mult=lr_mult, max_mult=max_mult, max_iter=max_iter)
    snapshot = _Snapshot(self)
    try:
        self.remove_callbacks([cb for cb in self.cbs if isinstance(cb, BaseSchedulerCB)])  # they would set the lr
        n_epochs = max(1, math.ceil(max_iter / max(1, len(self.dls.train))))
        self.fit(n_epochs, lr=start_lr, valid=False, callbacks=[finder])
    finally: snapshot.restore()
    if not finder.lrs:
        raise RuntimeError(f"lr_find recorded no batch: the first loss at lr={start_lr} was not finite. "
                           f"Check the model and data with a plain fit, or start lower.")
    fig = finder.plot() if show_plot else None
    return LRFindResult(**finder.suggestions(), lrs=finder.lrs, losses=finder.losses, fig=fig)


Trainer.lr_find = lr_find
