"""`Trainer.get_preds` and `Trainer.predict` (the `PredictMixin`): the model's outputs on a loader or a batch, outside any fit.

They call the model directly (no callbacks run): each input batch is moved to the model's device, the model runs
in eval mode under `torch.no_grad()`, and its previous train/eval mode is restored afterwards.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..runtime.device import model_device, to_cpu, to_device


def _run(model: torch.nn.Module, x: Any, tta: Sequence[Callable] | None, act: Callable | None) -> torch.Tensor:
    def once(xb):
        out = model(xb)
        return act(out) if act is not None else out
    if not tta: return once(x)
    # Test-time augmentation: the mean of the predictions over the transformed inputs.
    return torch.stack([once(t(x)) for t in tta]).mean(0)


class PredictMixin:
    """`Trainer.get_preds` and `Trainer.predict`."""

    model: torch.nn.Module
    dls: Any

    def get_preds(self, dl: Any = None, with_targets: bool = True, tta: Sequence[Callable] | None = None,
                  act: Callable | None = None, decode: bool = False) -> Any:
        """Predictions for every batch of `dl` (default `dls.valid`), concatenated on the CPU, with the targets if asked.

        `act` (e.g. `partial(torch.softmax, dim=-1)`) is applied to the outputs; `tta` is a list of input transforms
        whose predictions are averaged (include `lambda x: x` to count the plain input too).
        Batches are `(inputs, targets, ...)` sequences; with `with_targets=False` a batch may also be the inputs alone.
        `decode=True` returns, instead of the outputs, each row's predicted class (the arg-max): its name where the
        data has class names (a `ClassLabel` feature of `dl`'s or the training data), else its index (a tensor).
        """
        dl = self.dls.valid if dl is None else dl
        model, device = self.model, model_device(self.model)
        was_training = model.training
        preds, targets = [], []
        try:
            model.eval()
            with torch.no_grad():
                for batch in dl:
                    seq = isinstance(batch, (list, tuple))
                    if with_targets and not (seq and len(batch) > 1):
                        raise ValueError("get_preds: the loader's batches have no targets (expected (inputs, targets)); "
                                         "pass with_targets=False.")
                    x = batch[0] if seq else batch
                    preds.append(to_cpu(_run(model, to_device(x, device), tta, act)))
                    if with_targets: targets.append(to_cpu(batch[1]))
        finally: model.train(was_training)
        if not preds: raise ValueError("get_preds: the loader gave no batches.")
        out: Any = torch.cat(preds)
        if decode: out = self._decode(out, dl)
        return (out, torch.cat(targets)) if with_targets else out

    def _decode(self, preds: torch.Tensor, dl: Any) -> list[str] | torch.Tensor:
        from ..display.images import class_names
        names = class_names(dl) or class_names(getattr(self.dls, "train", None))
        idx = preds.argmax(dim=-1)
        return [names[i] for i in idx.tolist()] if names else idx


    def predict(self, x: Any, tta: Sequence[Callable] | None = None, act: Callable | None = None) -> torch.Tensor:
        """The model's output for the input batch `x` (for one item pass `x[None]`), on the CPU; `tta`/`act` as in get_preds."""
        model = self.model
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad(): return to_cpu(_run(model, to_device(x, model_device(model)), tta, act))
        finally: model.train(was_training)
