"""`GradAccumCB`: one optimizer step per `n` training batches, on their averaged gradients."""
from __future__ import annotations

from typing import Any

import torch

from ..callback import Callback
from ..runtime.args import whole_number


class GradAccumCB(Callback):
    '''Steps and zeroes the gradients every `n` training batches, averaging the gradients over those batches

    With a loss that is a mean over the batch, `n` batches of size b then make the same step as one batch of n*b.
    Claims `step` and `zero_grad` (each optimizer in `trainer.opts` steps through its `step()`, so MixedPrecisionCB's scaler
    and GradClipCB's pre-step clipping apply, once per real step). The averaging divides the summed gradients by
    the number of batches just before the step: the same as dividing each loss by n, but `trainer.loss` stays the
    true loss for the metrics. A partial group left at the end of a training epoch still steps, averaged over its
    own batches. BatchSchedulerCB still steps every batch; FitSchedulerCB's schedules step once per real step (and
    are sized by `optimizer_steps`). `state_dict` holds the count and the gradients accumulated so far, so a
    checkpoint in the middle of a group resumes exactly.
    '''

    claims = ('step', 'zero_grad')

    def __init__(self, n: int):
        self.n, self.count = whole_number("n", n, owner="GradAccumCB", what="batches per optimizer step"), 0

    def optimizer_steps(self, batches: int) -> int:
        """The optimizer steps of an epoch of `batches` training batches (the partial group at its end steps too);
        FitSchedulerCB sizes its schedule by it."""
        return -(-batches // self.n)

    def before_fit(self, trainer):
        self.count = 0
        for opt in trainer.opts.values(): opt.zero_grad()  # start from clean gradients whatever ran before
        self._params = [p for opt in trainer.opts.values() for group in opt.param_groups for p in group['params']]

    def state_dict(self) -> dict[str, Any]:
        grads = [None if p.grad is None else p.grad.detach().cpu().clone() for p in getattr(self, "_params", [])]
        return {"count": self.count, "grads": grads if self.count else []}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state["count"]
        for p, g in zip(self._params, state["grads"]):
            p.grad = None if g is None else g.to(device=p.device, dtype=p.dtype)

    def step(self, trainer):
        self.count += 1
        if self.count == self.n: self._average_and_step(trainer)

    def zero_grad(self, trainer):
        if self.count == self.n: self._zero(trainer)

    def after_epoch(self, trainer):
        if trainer.training and self.count:
            self._average_and_step(trainer)
            self._zero(trainer)

    def _average_and_step(self, trainer) -> None:
        if self.count > 1:
            with torch.no_grad():
                for opt in trainer.opts.values():
                    for group in opt.param_groups:
                        for p in group['params']:
                            if p.grad is not None: p.grad.div_(self.count)
        for opt in trainer.opts.values(): opt.step()

    def _zero(self, trainer) -> None:
        for opt in trainer.opts.values(): opt.zero_grad()
        self.count = 0
