"""`BatchTransformCB`: the base for transforms that change a batch's inputs and targets together, on the device."""
from __future__ import annotations

from typing import Any

from ..callback import Callback, Order
from ..runtime.batch import join_batch, split_batch


class BatchTransformCB(Callback):
    '''Override `transform(xb, yb) -> (xb, yb)`; it is applied to `trainer.batch` at `before_batch`, on training batches

    `xb` and `yb` are tuples, the batch split with `trainer.n_inp` as the step splits it (see
    AIsaac.runtime.batch.split_batch); what `transform` returns becomes `trainer.batch` (`(*xb, *yb)` for a tuple
    batch; see `join_batch`), which the step then splits again with `n_inp`, so a transform that returns two inputs
    goes with `BasicTrainCB(n_inp=2)`. It runs after DeviceCB, so on the device: keep it in tensor operations (no
    `.item()`), and draw its randomness from torch so checkpoints replay it. `on_valid=True` transforms validation
    batches too. MixUpCB, CutMixCB and BatchAugmentationCB are made this way; diffusion noising in five lines:

        class NoiseCB(BatchTransformCB):
            def transform(self, xb, yb):
                x0 = xb[0]
                t = torch.randint(0, 1000, (len(x0),), device=x0.device)
                noise = torch.randn_like(x0)
                a = alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)
                return (a.sqrt() * x0 + (1 - a).sqrt() * noise, t), (noise,)  # model(x_t, t) predicts the noise
    '''

    order = Order.STEP_WRAPPER  # after DeviceCB has moved the batch, before any callback reads it
    _n_inp = 1

    def __init__(self, on_train: bool = True, on_valid: bool = False):
        self.on_train, self.on_valid = on_train, on_valid

    def before_batch(self, trainer):
        if not (self.on_train if trainer.training else self.on_valid): return
        self._n_inp = trainer.n_inp
        trainer.batch = self.apply(trainer.batch)

    def apply(self, batch: Any) -> Any:
        '''The batch with its inputs and targets passed through `transform`'''
        xb, yb = split_batch(batch, self._n_inp)
        xb, yb = self.transform(xb, yb)
        return join_batch(batch, tuple(xb), tuple(yb))

    def transform(self, xb: tuple, yb: tuple) -> tuple[tuple, tuple]:
        raise NotImplementedError(f"{type(self).__name__} must define transform(xb, yb), returning the new (xb, yb).")
