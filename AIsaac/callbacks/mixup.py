"""`MixUpCB` and `CutMixCB`: training batches mixed with a shuffled copy of themselves, targets as mixed soft labels."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..runtime.batch import join_batch
from ..runtime.args import whole_number
from .batch_transform import BatchTransformCB


def _mixed_key(batch: Mapping, owner: str) -> str:
    """The key of a mapping batch's input to mix: its first floating-point tensor (`pixel_values`, embeddings)."""
    key = next((k for k, v in batch.items() if isinstance(v, torch.Tensor) and v.is_floating_point()), None)
    if key is None:
        raise TypeError(f"{owner} mixes a floating-point input (images, embeddings), but the batch is a mapping with "
                        f"no floating-point tensor (keys: {list(batch)}); token ids cannot be mixed. Mix the "
                        f"embeddings inside the model instead, or make the batch carry float inputs "
                        f"(e.g. 'pixel_values').")
    return key


class MixUpCB(BatchTransformCB):
    '''MixUp (Zhang et al. 2018): each training batch becomes `lam * x + (1 - lam) * x[perm]`, its targets
    `lam * onehot(y) + (1 - lam) * onehot(y[perm])`, with `lam ~ Beta(alpha, alpha)` drawn once per batch

    Everything is drawn and computed on the batch's device with torch's generators (no host sync; checkpoints replay
    it). The targets become class probabilities, which `nn.CrossEntropyLoss` takes as they are; float targets
    (already probabilities, or regression values) are mixed as they are. `num_classes`: the number of classes, or
    None to read it from the predictions' dimension 1 at the fit's first training batch (whose targets are then made
    at `get_loss`, just before the loss). Validation batches are never mixed, so MetricsCB's validation metrics see
    the true labels; leave training metrics (`MetricsCB(on_train=True)`) out, their targets are mixed. The first
    input and the first target are mixed; further inputs and targets are shuffled along, not mixed. Of a mapping
    batch (Hugging Face style), the first floating-point tensor is mixed (`pixel_values`), the other tensors
    shuffled along, and `labels` made soft labels.
    '''

    observes = ('get_loss',)  # at the first batch without num_classes: the soft targets, just before the loss

    def __init__(self, alpha: float = 0.4, num_classes: int | None = None):
        super().__init__(on_train=True, on_valid=False)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"{type(self).__name__}: alpha is the Beta(alpha, alpha) of the mixing weight, a number "
                             f"> 0 (0.2 to 0.4 for MixUp, 1.0 for CutMix); got {alpha!r}.")
        self.alpha = float(alpha)
        self.num_classes = whole_number("num_classes", num_classes, owner=type(self).__name__, what="classes",
                                        none="read from the predictions")
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self._pairs: dict[torch.device, torch.Tensor] = {}  # (alpha, alpha) on each device the batches were on

    def __repr__(self) -> str: return f"{type(self).__name__}(alpha={self.alpha})"

    def before_fit(self, trainer): self._pending = None

    def draw(self, x: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """`lam ~ Beta(alpha, alpha)`: a float32 tensor on `x`'s device (`device`, when the caller has it).

        The numbers of `torch.distributions.Beta(alpha, alpha).sample()` (Beta draws the first of a Dirichlet pair
        with the same kernel), without building a distribution at every batch."""
        if device is None: device = x.device
        pair = self._pairs.get(device)
        if pair is None: pair = self._pairs[device] = torch.full((2,), self.alpha, device=device)
        return torch._sample_dirichlet(pair)[0]  # no validation: it would read the device

    def mix(self, x: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed inputs and the share of `x` in them."""
        return lam * x + (1 - lam) * x[perm], lam

    def transform(self, xb: tuple, yb: tuple) -> tuple[tuple, tuple]:
        inputs = xb[0]
        key = _mixed_key(inputs, type(self).__name__) if isinstance(inputs, Mapping) else None
        x = inputs if key is None else inputs[key]
        device = x.device
        lam = self.draw(x, device)
        perm = torch.randperm(x.shape[0], device=device)
        x, lam = self.mix(x, perm, lam)
        if key is not None:  # a mapping batch: its other tensors of the batch's rows are shuffled along
            n = len(perm)
            x = {k: x if k == key else v[perm] if isinstance(v, torch.Tensor) and v.ndim and len(v) == n else v
                 for k, v in inputs.items()}
        xb = (x, *[o[perm] for o in xb[1:]]) if len(xb) > 1 else (x,)
        if not yb: return xb, yb
        y, rest = yb[0], tuple([o[perm] for o in yb[1:]]) if len(yb) > 1 else ()
        if not y.is_floating_point() and self.num_classes is None:  # made at get_loss, once the classes are known
            self._pending = (perm, lam)
            return xb, (y, *rest)
        return xb, (self.soft(y, perm, lam, self.num_classes), *rest)

    @staticmethod
    def soft(y: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor, num_classes: int | None) -> torch.Tensor:
        """The mixed targets: class labels as one-hot probabilities (of `num_classes`), float targets as they are."""
        if not y.is_floating_point(): y = F.one_hot(y, -1 if num_classes is None else num_classes).float()
        if lam.dtype != y.dtype: lam = lam.to(y.dtype)
        return lam * y + (1 - lam) * y[perm]

    def get_loss(self, trainer):
        if self._pending is None or not trainer.training: return
        perm, lam = self._pending
        self._pending, self.num_classes = None, trainer.preds.shape[1]
        trainer.yb = (self.soft(trainer.yb[0], perm, lam, self.num_classes), *trainer.yb[1:])
        trainer.batch = join_batch(trainer.batch, trainer.xb, trainer.yb)

    def state_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.num_classes is None: self.num_classes = state["num_classes"]


class CutMixCB(MixUpCB):
    '''CutMix (Yun et al. 2019): a box of each training image is replaced by the same box of another image of the batch;
    the targets are mixed by the share of the image each keeps

    The box covers about `1 - lam` of the image (`lam ~ Beta(alpha, alpha)`, its sides `sqrt(1 - lam)` of the image's,
    centred at a random pixel, clipped to the image); the targets are mixed with the share it really leaves. Inputs
    are images `(N, ..., H, W)`. All on the device, as MixUpCB (whose arguments and targets it shares).
    '''

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None): super().__init__(alpha, num_classes)

    def mix(self, x: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim < 3:
            raise ValueError(f"CutMixCB cuts boxes out of images (N, ..., H, W); the inputs have shape "
                             f"{tuple(x.shape)}. Use MixUpCB for other inputs.")
        h, w = x.shape[-2:]
        cut = torch.sqrt(1 - lam)
        (y1, y2), (x1, x2) = (self._span(n, cut, x.device) for n in (h, w))
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        box = ((rows >= y1) & (rows < y2))[:, None] & ((cols >= x1) & (cols < x2))[None, :]
        return torch.where(box, x[perm], x), 1 - (y2 - y1) * (x2 - x1) / (h * w)

    @staticmethod
    def _span(n: int, cut: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The box's first and last+1 index along a side of `n` pixels: `cut * n` long, about a random centre."""
        half = torch.floor(n * cut / 2)
        centre = torch.randint(n, (), device=device)
        return (centre - half).clamp(0, n), (centre + half).clamp(0, n)
