"""`EMACB` and `SWACB`: an average of the model's weights over training, exponential (EMA) or equal-weight (SWA)."""
from __future__ import annotations

import copy
from itertools import islice
from typing import Any, Iterable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from ..callback import Callback, Order
from ..runtime.args import whole_number
from ..runtime.batch import loader_length, split_batch
from ..runtime.model_state import unwrap_model
from ..runtime.placement import model_device, to_device
from ..runtime.steps import StepWatch


def _copy_without_hooks(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with no forward or backward hooks (another callback's hooks stay on the model only)."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        for name, value in vars(m).items():
            if name.startswith(("_forward", "_backward")) and "hooks" in name and isinstance(value, dict):
                memo[id(value)] = type(value)()
    twin = copy.deepcopy(model, memo)
    for p in twin.parameters():
        p.requires_grad_(False)
        p.grad = None
    return twin.eval()


class _Inputs(nn.Module):
    """Calls `model` on a batch's inputs `xb` as the training step does (`model(**mapping)` or `model(*xb)`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, xb: tuple) -> Any:
        return self.model(**xb[0]) if len(xb) == 1 and isinstance(xb[0], dict) else self.model(*xb)


class EMACB(Callback):
    '''Keeps `model`, an averaged copy of the model: after each optimizer step, `avg = avg + (1 - decay) * (w - avg)`

    The copy is made at the first fit (after DeviceCB has moved the model: on its device, in eval mode) and carried on
    by the trainer's later fits of the same model. Its parameters and floating buffers are averaged (one
    `torch._foreach_lerp_`, no host sync), its integer buffers (BatchNorm's counts) copied. It is updated each time
    `trainer.step` moves (GradAccumCB's accumulating batches and a GradScaler's skipped steps do not), or with
    `per='epoch'` at the end of each training epoch. `decay=None` is the equal-weight average of SWA: the n-th update
    weighs 1/n. With `start_epoch` or `start_step` (the first `start_step` optimizer steps are left out), averaging
    starts there, and its first update copies the weights; without, the average starts from the weights at the start.

    `validate_with_ema`: validation phases run with the averaged weights (copied into the model, and back at the
    phase's cleanup). `use_for_saving` (None: as `validate_with_ema`): `trainer.model_to_save` is the averaged copy,
    so `trainer.save`, `trainer.export` and SaveBestCB write the averaged weights (CheckpointCB keeps both: the model,
    and the average in this callback's state). `update_bn`: at the end of a fit, the copy's BatchNorm statistics are
    recomputed over the training loader's inputs (`torch.optim.swa_utils.update_bn`; `bn_batches` batches at most,
    needed for a loader without a length). `state_dict` holds the average and its count: a resumed fit continues it
    bit-exactly. Takes no part in side runs (`lr_find`, `trainer.validate`). Sampling or predicting with the average:
    `trainer.EMACB.model(x)`.
    '''

    # After the step's callbacks (GradAccumCB's last step of an epoch is at after_epoch) and the metrics; before the
    # monitors (SaveBestCB reads the weights after they are swapped back) and CheckpointCB (it saves the update).
    order = Order.METRICS + 1
    side_runs = False

    def __init__(self, decay: float | None = 0.999, validate_with_ema: bool = False, use_for_saving: bool | None = None,
                 per: str = 'step', start_epoch: int = 0, start_step: int = 0, update_bn: bool = False,
                 bn_batches: int | None = None):
        if decay is not None and not (isinstance(decay, (int, float)) and 0 <= decay < 1):
            raise ValueError(f"EMACB: decay must be a number in [0, 1) (e.g. 0.999: the average moves 0.1% of the "
                             f"way to the weights each step), or None for an equal-weight average (SWA); got {decay!r}.")
        if per not in ('step', 'epoch'):
            raise ValueError(f"EMACB: per must be 'step' (after each optimizer step) or 'epoch' (after each training "
                             f"epoch); got {per!r}.")
        self.decay, self.per, self.validate_with_ema = decay, per, bool(validate_with_ema)
        self.use_for_saving = self.validate_with_ema if use_for_saving is None else bool(use_for_saving)
        self.start_epoch = whole_number("start_epoch", start_epoch, minimum=0, owner=type(self).__name__,
                                        what="the epoch averaging starts at")
        self.start_step = whole_number("start_step", start_step, minimum=0, owner=type(self).__name__,
                                       what="optimizer steps left out of the average")
        self.update_bn = bool(update_bn)
        self.bn_batches = whole_number("bn_batches", bn_batches, owner=type(self).__name__,
                                       what="batches for the BatchNorm update", none="the whole training loader")
        self.model: nn.Module | None = None  # the averaged copy
        self.n_averaged = 0  # how many weight sets the average holds (the starting weights count as one)
        self._source: nn.Module | None = None
        self._watch = StepWatch()
        self._backup: list[torch.Tensor] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(decay={self.decay}, per={self.per!r})"

    def averaged_model(self) -> nn.Module | None:
        """The averaged copy of the model (None before the first fit); the same as `model`."""
        return self.model

    # ---- building the copy and the lists it is updated through ----
    def before_fit(self, trainer):
        source = unwrap_model(trainer.model)
        if self.update_bn and self.bn_batches is None and trainer.run_train:
            if loader_length(trainer.dls.train) is None:
                raise ValueError(f"{type(self).__name__}(update_bn=True) goes through the whole training loader at the "
                                 f"end of the fit, but it has no length (a stream); pass bn_batches=N to use N "
                                 f"batches.")
        if self.model is None or self._source is not source:
            self.model, self._source = _copy_without_hooks(source), source
            self.n_averaged = 0 if self.decay is None or self.start_epoch or self.start_step else 1
        else: self.model.to(model_device(source))  # the model may have moved since the last fit
        self._pair(self.model, source)
        self._watch.reset()
        self._backup = None
        if self.use_for_saving: trainer.model_to_save = self.model

    def _pair(self, model: nn.Module, source: nn.Module) -> None:
        own = [*model.named_parameters(), *model.named_buffers()]
        theirs = [*source.named_parameters(), *source.named_buffers()]
        if [n for n, _ in own] != [n for n, _ in theirs]:
            raise RuntimeError(f"{type(self).__name__}: the model's parameters and buffers are no longer those of its "
                               f"averaged copy; give the trainer a new {type(self).__name__} for a changed model.")
        # Detached views of the weights as they are at the fit's start (the same memory, so the optimizer's in-place
        # steps show through): updated in place outside autograd, with no `torch.no_grad()` per step.
        floats = [(a.detach(), b.detach()) for (_, a), (_, b) in zip(own, theirs) if a.is_floating_point()]
        others = [(a.detach(), b.detach()) for (_, a), (_, b) in zip(own, theirs) if not a.is_floating_point()]
        self._avg, self._src = [a for a, _ in floats], [b for _, b in floats]
        self._avg_other, self._src_other = [a for a, _ in others], [b for _, b in others]

    # ---- the update: once per optimizer step (or training epoch), on the device ----
    def _started(self, trainer) -> bool:
        return trainer.epoch >= self.start_epoch and trainer.step > self.start_step

    def _update(self) -> None:
        n = self.n_averaged
        if n == 0: torch._foreach_copy_(self._avg, self._src)
        else: torch._foreach_lerp_(self._avg, self._src, 1 / (n + 1) if self.decay is None else 1 - self.decay)
        if self._avg_other: torch._foreach_copy_(self._avg_other, self._src_other)
        self.n_averaged = n + 1

    def _catch_up(self, trainer) -> None:
        # `trainer.step` is a Python int: looking at it reads nothing from the device.
        if self.per == 'step' and self._watch.moved(trainer) and self._started(trainer): self._update()

    def cleanup_batch(self, trainer):
        if trainer.training: self._catch_up(trainer)

    def after_epoch(self, trainer):
        if trainer.training and self.per == 'epoch' and self._started(trainer): self._update()

    # ---- validating with the average ----
    def before_epoch(self, trainer):
        # A training phase: the count is taken here (first look after a fit's start or a resume) and followed after
        # each batch (cleanup_batch), so nothing runs before a batch.
        self._catch_up(trainer)
        if trainer.training: return
        if self.validate_with_ema and self._backup is None:
            with torch.no_grad():
                self._backup = [t.clone() for t in (*self._src, *self._src_other)]
                torch._foreach_copy_([*self._src, *self._src_other], [*self._avg, *self._avg_other])

    def cleanup_epoch(self, trainer):
        if trainer.training: return self._catch_up(trainer)  # GradAccumCB's last step of the epoch
        if self._backup is not None:
            with torch.no_grad(): torch._foreach_copy_([*self._src, *self._src_other], self._backup)
            self._backup = None

    def after_fit(self, trainer):
        self._catch_up(trainer)
        if self.update_bn and trainer.run_train and self.model is not None and self.n_averaged:
            self._update_bn(trainer, self.model)

    def _update_bn(self, trainer, model: nn.Module) -> None:
        device = model_device(model)
        inputs: Iterable[Any] = (to_device(split_batch(b, trainer.n_inp)[0], device) for b in trainer.dls.train)
        if self.bn_batches is not None: inputs = islice(inputs, self.bn_batches)
        with torch.no_grad(): update_bn(((xb,) for xb in inputs), _Inputs(model))

    # ---- checkpoints ----
    def state_dict(self) -> dict[str, Any]:
        """The averaged weights (on the CPU; None before the first fit) and how many weight sets they hold."""
        average = None if self.model is None else {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return {"average": average, "n_averaged": self.n_averaged}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["average"] is not None and self.model is not None: self.model.load_state_dict(state["average"])
        self.n_averaged = state["n_averaged"]
        self._watch.reset()  # the resumed fit's step count is taken as its first phase begins


class SWACB(EMACB):
    '''Stochastic weight averaging (`torch.optim.swa_utils`): EMACB's equal-weight average of the weights at the end of
    each training epoch from `start_epoch` on, with the BatchNorm statistics recomputed at the end of the fit

    `per='step'` averages after each optimizer step instead (from `start_step`); the other arguments are EMACB's. Pair
    it with a constant or cyclic lr from the start epoch (e.g. `EpochSchedulerCB(partial(SWALR, swa_lr=0.05))`).
    '''

    def __init__(self, start_epoch: int = 0, per: str = 'epoch', validate_with_ema: bool = False,
                 use_for_saving: bool | None = None, start_step: int = 0, update_bn: bool = True,
                 bn_batches: int | None = None):
        super().__init__(None, validate_with_ema, use_for_saving, per, start_epoch, start_step, update_bn, bn_batches)

    def __repr__(self) -> str: return f"SWACB(start_epoch={self.start_epoch}, per={self.per!r})"
