"""`BasicTrainCB`: the plain PyTorch training step, one phase per event, and the checks of a fit's first batch
(they turn confusing failures, or silent nonsense, into errors that say what to do)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..callback import Callback


def describe(obj: Any) -> str:
    """A short description of a batch's structure: types, shapes and devices, never values."""
    if isinstance(obj, torch.Tensor): return f"a tensor of shape {tuple(obj.shape)} ({obj.dtype}, on {obj.device})"
    if isinstance(obj, dict): return f"a dict with keys {list(obj)}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)}: [" + ", ".join(describe(o) for o in obj[:4]) + \
            (", ..." if len(obj) > 4 else "") + "]"
    return f"a {type(obj).__name__}"


def _first_device(x: Any) -> torch.device | None:
    if isinstance(x, torch.Tensor): return x.device
    if isinstance(x, dict): x = list(x.values())
    if isinstance(x, (tuple, list)):
        for o in x:
            if (d := _first_device(o)) is not None: return d
    return None


def check_inputs(trainer: Any) -> None:
    """Raise when the batch is not `(inputs, targets)` or its inputs are not on the model's device."""
    batch = trainer.batch
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"BasicTrainCB needs each batch as (inputs, targets), but got {describe(batch)}. Make the "
                        f"DataLoader yield pairs (e.g. TensorDataset(x, y), or DataLoaders.from_dataset_dict with "
                        f"the input feature first and the label second), or use a callback with its own predict and "
                        f"get_loss for batches of this form.")
    param = next(iter(trainer.model.parameters()), None) if isinstance(trainer.model, nn.Module) else None
    data = _first_device(batch[0])
    if param is not None and data is not None and param.device != data:
        raise RuntimeError(f"The model is on {param.device} but the batch is on {data}. Add DeviceCB() to the "
                           f"callbacks (it puts the model and every batch on one device), or move them yourself.")


CLASSIFICATION_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)
# Element-wise losses: predictions and targets of different shapes broadcast silently into a wrong loss.
REGRESSION_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCELoss, nn.BCEWithLogitsLoss)
REGRESSION_FUNCTIONS = (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.binary_cross_entropy,
                        F.binary_cross_entropy_with_logits)


def check_shapes(trainer: Any) -> None:
    """For an element-wise loss (MSE, L1, Huber, BCE...), raise when predictions and targets differ in shape."""
    loss_func, preds, target = trainer.loss_func, trainer.preds, trainer.batch[1]
    if not (isinstance(loss_func, REGRESSION_LOSSES) or loss_func in REGRESSION_FUNCTIONS): return
    if not isinstance(preds, torch.Tensor) or not isinstance(target, torch.Tensor) or preds.shape == target.shape: return
    hint = (" Squeeze the model's last dimension (e.g. end it with nn.Flatten(0)) or give targets shape "
            f"{tuple(preds.shape)} (y.unsqueeze(-1))." if preds.ndim == target.ndim + 1 and preds.shape[-1] == 1 else "")
    raise ValueError(f"{type(loss_func).__name__ if isinstance(loss_func, nn.Module) else loss_func.__name__} gets "
                     f"predictions of shape {tuple(preds.shape)} and targets of shape {tuple(target.shape)}: they "
                     f"would broadcast into a loss over every pair, and the model would learn the wrong thing.{hint}")


def check_targets(trainer: Any) -> None:
    """For a classification loss, raise when a label is not one of the model's classes (one host-device sync).

    On a GPU such a label would otherwise stop the process with a device-side assert that names nothing.
    """
    loss_func, preds, target = trainer.loss_func, trainer.preds, trainer.batch[1]
    if not (isinstance(loss_func, CLASSIFICATION_LOSSES) or loss_func in (F.cross_entropy, F.nll_loss)): return
    # Float targets are class probabilities, and unbatched predictions have no class dimension to check against.
    if not isinstance(preds, torch.Tensor) or not isinstance(target, torch.Tensor) or preds.ndim < 2: return
    if target.is_floating_point(): return
    n = preds.shape[1]
    bad = ((target < 0) | (target >= n)) & (target != getattr(loss_func, "ignore_index", -100))
    if bad.any():
        values = target[bad].unique()[:8].tolist()
        raise ValueError(f"Labels {values} are not among the model's {n} classes (0 to {n - 1}): its output has "
                         f"{n} columns. Give the model's last layer one output per class (at least "
                         f"{int(target.max()) + 1}), or map the labels to 0..{n - 1}.")


class BasicTrainCB(Callback):
    '''Callback for basic pytorch training loop'''

    checked = False  # the first batch of each fit is checked for form, device and labels (see check_inputs, check_targets)

    def before_fit(self, trainer): self.checked = False

    def predict(self, trainer):
        if not self.checked: check_inputs(trainer)
        trainer.preds = trainer.model(trainer.batch[0])

    def get_loss(self, trainer):
        if not self.checked:
            check_targets(trainer)
            check_shapes(trainer)
            self.checked = True
        trainer.loss = trainer.loss_func(trainer.preds, trainer.batch[1])

    def backward(self, trainer): trainer.loss.backward()
    def step(self, trainer): trainer.opt.step()
    def zero_grad(self, trainer): trainer.opt.zero_grad()
