"""`BatchAugmentationCB`: transforms applied to whole batches, position by position, before the model sees them."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Sequence

import torch

from ..callback import Callback, Order
from ..runtime.batch import first_tensor
from ..runtime.placement import model_device, to_device

Transform = Callable[[Any], Any]


class BatchAugmentationCB(Callback):
    '''Applies `tfms` to each batch, position by position, at `before_batch`, after DeviceCB has moved it

    `tfms` is one callable, applied to the inputs `batch[0]`, or a sequence with one entry per batch position
    (None leaves that position as it is), e.g. `[flip, None]` for inputs and targets, or the original AIsaac's
    `(img_tfms, lbl_tfms)`. Which batches each transform sees (`on_valid=None`, the default):
      - transforms of the inputs alone (one callable, or a sequence with None or nothing after the first
        `trainer.n_inp` positions) are augmentation: training batches only, so validation sees the data as it is;
      - a sequence that also transforms a later position (targets, prompts to tokenize) makes the batch what the
        model and the loss take: each of its transforms applies to every batch, training and validation, as the
        original's did.
    `on_valid=True` or `False` says it for every transform, and a sequence of booleans for each position
    (`on_valid=(False, True)`: random crops in training only, prompts tokenized in both); `on_train=False` leaves
    training batches alone. A tuple or list batch comes out a list, even where nothing is transformed, so later
    callbacks may `append` to it as in the original (a namedtuple keeps its type). A transform that makes tensors
    of a position that held none (a tokenizer given strings, which DeviceCB could not move) has them moved to the
    model's device.
    '''

    order = Order.STEP_WRAPPER  # after DeviceCB has moved the batch, before any callback reads it
    # Class defaults, so a subclass with its own __init__ works.
    tfms: tuple[Transform | None, ...] = ()
    on_train: bool = True
    on_valid: bool | Sequence[bool] | None = None

    def __init__(self, tfms: Transform | Sequence[Transform | None], on_train: bool = True,
                 on_valid: bool | Sequence[bool] | None = None):
        if callable(tfms): tfms = (tfms,)
        elif isinstance(tfms, (list, tuple)):
            bad = [i for i, t in enumerate(tfms) if t is not None and not callable(t)]
            if bad: raise TypeError(f"BatchAugmentationCB: tfms[{bad[0]}] is a {type(tfms[bad[0]]).__name__}, not a "
                                    f"callable; give one callable per batch position, or None to leave it.")
        else:
            raise TypeError(f"BatchAugmentationCB: tfms must be a callable or a list of callables (None to skip a "
                            f"position); got {type(tfms).__name__}.")
        if isinstance(on_valid, (list, tuple)) and len(on_valid) != len(tfms):
            raise ValueError(f"BatchAugmentationCB: on_valid has {len(on_valid)} entries for {len(tfms)} transforms; "
                             f"give one per position, or one boolean for all.")
        self.tfms, self.on_train, self.on_valid = tuple(tfms), on_train, on_valid

    def valid_tfms(self, n_inp: int = 1) -> tuple[Transform | None, ...]:
        '''The transforms applied to validation batches (None where a position is left as it is)'''
        on = self.on_valid
        if on is None: on = any(t is not None for t in self.tfms[n_inp:])  # a later position too: the data itself
        if isinstance(on, bool): return self.tfms if on else (None,) * len(self.tfms)
        return tuple(t if v else None for t, v in zip(self.tfms, on))

    def before_batch(self, trainer):
        '''applies tfms in tfms list to appropriate items in batch'''
        if trainer.training: tfms = self.tfms if self.on_train else ()
        else: tfms = self.valid_tfms(trainer.n_inp)
        trainer.batch = self.apply(trainer.batch, tfms, trainer.model)

    def apply(self, batch: Any, tfms: Sequence[Transform | None] | None = None, model: Any = None) -> Any:
        '''The batch with each position passed through its transform (`tfms`, default all of them); tensors made
        from a position that held none go to `model`'s device, when a model is given'''
        tfms = self.tfms if tfms is None else tfms
        if isinstance(batch, Mapping):
            raise TypeError(f"BatchAugmentationCB transforms tuple or list batches position by position, but this "
                            f"batch is a {type(batch).__name__} with keys {list(batch)}; transform it in the dataset "
                            f"or collate_fn, or write a callback whose before_batch changes trainer.batch.")
        if not isinstance(batch, (list, tuple)):  # one tensor: the inputs alone
            if len(self.tfms) > 1: self._too_many(1)
            return tfms[0](batch) if tfms and tfms[0] is not None else batch
        if len(self.tfms) > len(batch): self._too_many(len(batch))
        out = list(batch)
        for i, t in enumerate(tfms):
            if t is None: continue
            out[i] = t(batch[i])
            if model is not None and first_tensor(batch[i]) is None and first_tensor(out[i]) is not None \
                    and isinstance(model, torch.nn.Module):
                out[i] = to_device(out[i], model_device(model))
        if hasattr(batch, "_fields"): return type(batch)(*out)  # a namedtuple keeps its type
        return out

    def _too_many(self, n: int) -> None:
        raise ValueError(f"BatchAugmentationCB has {len(self.tfms)} transforms but the batch has only {n} "
                         f"position{'s' * (n > 1)}; give at most one transform per position.")
