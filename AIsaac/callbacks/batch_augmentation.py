"""`BatchAugmentationCB`: transforms applied to whole batches, on the device, before the model sees them."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from .batch_transform import BatchTransformCB

Transform = Callable[[Any], Any]


class BatchAugmentationCB(BatchTransformCB):
    '''Applies `tfms` to the batch at `before_batch`, after DeviceCB has moved it (so on the device)

    `tfms` is one callable, applied to the inputs `batch[0]`, or a sequence with one entry per batch position
    (None leaves that position as it is), e.g. `[flip, None]` for inputs and targets. By default only training
    batches are transformed; `on_valid=True` transforms validation batches too. (BatchTransformCB with a transform
    per position of the batch, whatever `n_inp` is.)
    '''

    def __init__(self, tfms: Transform | Sequence[Transform | None], on_train: bool = True, on_valid: bool = False):
        if callable(tfms): tfms = (tfms,)
        elif isinstance(tfms, (list, tuple)):
            bad = [i for i, t in enumerate(tfms) if t is not None and not callable(t)]
            if bad: raise TypeError(f"BatchAugmentationCB: tfms[{bad[0]}] is a {type(tfms[bad[0]]).__name__}, not a "
                                    f"callable; give one callable per batch position, or None to leave it.")
        else:
            raise TypeError(f"BatchAugmentationCB: tfms must be a callable or a list of callables (None to skip a "
                            f"position); got {type(tfms).__name__}.")
        super().__init__(on_train, on_valid)
        self.tfms = tuple(tfms)

    def apply(self, batch: Sequence[Any]) -> Any:
        '''The batch with each position passed through its transform'''
        if len(self.tfms) > len(batch):
            raise ValueError(f"BatchAugmentationCB has {len(self.tfms)} transforms but the batch has only {len(batch)} "
                             f"positions; give at most one transform per position.")
        out = [t(b) if t is not None else b for t, b in zip(self.tfms, batch)]
        out.extend(batch[len(out):])
        if hasattr(batch, "_fields"): return type(batch)(*out)  # a namedtuple keeps its type
        return type(batch)(out) if isinstance(batch, (list, tuple)) else tuple(out)
