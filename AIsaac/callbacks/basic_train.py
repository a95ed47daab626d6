"""`BasicTrainCB`: the plain PyTorch training step, one phase per event, and the checks of a fit's first batch
(they turn confusing failures, or silent nonsense, into errors that say what to do)."""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from operator import attrgetter, itemgetter
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..callback import Callback
from ..runtime.args import whole_number
from ..runtime.batch import first_tensor
from ..runtime.placement import model_device


def describe(obj: Any) -> str:
    """A short description of a batch's structure: types, shapes and devices, never values."""
    if isinstance(obj, torch.Tensor): return f"a tensor of shape {tuple(obj.shape)} ({obj.dtype}, on {obj.device})"
    if isinstance(obj, Mapping): return f"a {type(obj).__name__} with keys {list(obj)}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)}: [" + ", ".join(describe(o) for o in obj[:4]) + \
            (", ..." if len(obj) > 4 else "") + "]"
    return f"a {type(obj).__name__}"


def check_inputs(trainer: Any, n_inp: int) -> None:
    """Raise when the batch cannot be split into `n_inp` inputs, or its inputs are not on the model's device."""
    batch, xb = trainer.batch, trainer.xb
    if isinstance(batch, (tuple, list)) and len(batch) < n_inp:
        raise TypeError(f"BasicTrainCB(n_inp={n_inp}) takes the first {n_inp} items of each batch as the model's "
                        f"inputs, but got {describe(batch)}. Make the DataLoader yield (inputs..., targets...), or "
                        f"set n_inp to the number of inputs.")
    # A model with neither parameters nor buffers runs wherever its inputs are.
    device = model_device(trainer.model, None) if isinstance(trainer.model, nn.Module) else None
    data = first_tensor(xb)
    if device is not None and data is not None and device != data.device:
        raise RuntimeError(f"The model is on {device} but the batch is on {data.device}. Add DeviceCB() to the "
                           f"callbacks (it puts the model and every batch on one device), or move them yourself.")


def output_reader(out: Any) -> Callable[[Any], Any] | None:
    """How to read the predictions from a model output: its `logits` (an attribute, or a mapping's key), or None
    when the output itself is the predictions (a tensor, a tuple of tensors, anything else)."""
    if isinstance(out, (torch.Tensor, tuple, list)): return None
    if hasattr(out, "logits"): return attrgetter("logits")  # Hugging Face ModelOutput
    if isinstance(out, Mapping) and "logits" in out: return itemgetter("logits")
    return None


def output_loss(out: Any) -> torch.Tensor:
    """The loss a model returned with its output (`out.loss` or `out['loss']`); an error when there is none."""
    if isinstance(out, dict): loss = out.get("loss")  # a dict, a Hugging Face ModelOutput
    else:
        loss = getattr(out, "loss", None)
        if loss is None and isinstance(out, Mapping): loss = out.get("loss")
    if loss is None:
        raise ValueError(f"The Trainer has loss_func=None, so the loss is the model output's own `loss`, but the model "
                         f"returned {describe(out)} without one. Pass a loss function to the Trainer (Trainer(dls, "
                         f"loss_func, ...), called as loss_func(preds, *targets)), or give the model its targets so it "
                         f"computes its loss (a Hugging Face model does when the batch has 'labels').")
    return loss


CLASSIFICATION_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)
# Element-wise losses: predictions and targets of different shapes broadcast silently into a wrong loss.
REGRESSION_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, nn.BCELoss, nn.BCEWithLogitsLoss)
REGRESSION_FUNCTIONS = (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.binary_cross_entropy,
                        F.binary_cross_entropy_with_logits)


def _loss_name(loss_func: Any) -> str:
    return type(loss_func).__name__ if isinstance(loss_func, nn.Module) else getattr(loss_func, "__name__", "loss_func")


def check_loss(loss: Any, loss_func: Any) -> None:
    """Raise when the loss is a tensor of more than one number (`reduction='none'`): backward and the averages need
    one number per batch."""
    if isinstance(loss, torch.Tensor) and loss.numel() != 1:
        raise ValueError(f"{_loss_name(loss_func)} returned a tensor of shape {tuple(loss.shape)}, not one number: the "
                         f"step backpropagates one number per batch and MetricsCB averages them. Use reduction='mean' "
                         f"(the default of torch's losses), or reduce it yourself, e.g. loss_func=lambda p, y: "
                         f"per_item(p, y).mean().")


def check_shapes(trainer: Any) -> None:
    """For an element-wise loss (MSE, L1, Huber, BCE...), raise when predictions and targets differ in shape."""
    loss_func, preds = trainer.loss_func, trainer.preds
    target = trainer.yb[0] if len(trainer.yb) == 1 else None
    if not (isinstance(loss_func, REGRESSION_LOSSES) or loss_func in REGRESSION_FUNCTIONS): return
    if not isinstance(preds, torch.Tensor) or not isinstance(target, torch.Tensor) or preds.shape == target.shape: return
    hint = (" Squeeze the model's last dimension (e.g. end it with nn.Flatten(0)) or give targets shape "
            f"{tuple(preds.shape)} (y.unsqueeze(-1))." if preds.ndim == target.ndim + 1 and preds.shape[-1] == 1 else "")
    raise ValueError(f"{_loss_name(loss_func)} gets "
                     f"predictions of shape {tuple(preds.shape)} and targets of shape {tuple(target.shape)}: they "
                     f"would broadcast into a loss over every pair, and the model would learn the wrong thing.{hint}")


def takes_predictions_only(loss_func: Callable) -> bool:
    """Whether `loss_func` can be called with the predictions alone (`loss(preds)`: a contrastive loss, say)."""
    import inspect
    # A module's own signature is its __call__'s (anything goes); its forward's says what it needs.
    try: inspect.signature(loss_func.forward if isinstance(loss_func, nn.Module) else loss_func).bind(None)
    except TypeError: return False
    except ValueError: return True  # no signature to read (a builtin): let the call itself tell
    return True


def check_targets(trainer: Any, n_inp: int = 1) -> None:
    """Raise when a batch has no targets for a loss_func that needs them; for a classification loss, when a label is
    not one of the model's classes (one host-device sync). On a GPU such a label would otherwise stop the process with
    a device-side assert that names nothing.
    """
    batch = trainer.batch
    if not trainer.yb:
        if takes_predictions_only(trainer.loss_func): return  # `loss(preds)`: a loss of the predictions only
        if isinstance(batch, Mapping):
            raise TypeError(f"BasicTrainCB: the batch is {describe(batch)}, with no 'labels' (or 'label') for "
                            f"loss_func. Add the targets under 'labels', or pass loss_func=None to use the loss the "
                            f"model returns.")
        raise TypeError(f"BasicTrainCB(n_inp={n_inp}) needs each batch as (inputs..., targets...) for loss_func, but "
                        f"got {describe(batch)}: no targets. Make the DataLoader yield pairs (e.g. TensorDataset(x, "
                        f"y), or DataLoaders.from_dataset_dict(..., inputs=[...], targets=[...])), or pass "
                        f"loss_func=None for a model that returns its own loss, or use a callback with its own "
                        f"get_loss. Training and trainer.validate need targets; to predict on data without them, use "
                        f"trainer.get_preds(dl, with_targets=False).")
    loss_func, preds, target = trainer.loss_func, trainer.preds, trainer.yb[0] if len(trainer.yb) == 1 else None
    if not (isinstance(loss_func, CLASSIFICATION_LOSSES) or loss_func in (F.cross_entropy, F.nll_loss)): return
    # Float targets are class probabilities, and unbatched predictions have no class dimension to check against.
    if not isinstance(preds, torch.Tensor) or not isinstance(target, torch.Tensor) or preds.ndim < 2: return
    if target.is_floating_point(): return
    if target.ndim == preds.ndim and target.shape[1] == 1:  # a column of labels: one index per row was meant
        squeeze = "y.squeeze(-1)" if target.ndim == 2 else "y.squeeze(1)"
        raise ValueError(f"{_loss_name(loss_func)} takes one class index per row, targets of shape "
                         f"{(target.shape[0], *target.shape[2:])}, but gets targets of shape {tuple(target.shape)} "
                         f"with predictions of shape {tuple(preds.shape)}. Squeeze the labels' column: {squeeze} "
                         f"(in the dataset, or a collate_fn).")
    n = preds.shape[1]
    bad = ((target < 0) | (target >= n)) & (target != getattr(loss_func, "ignore_index", -100))
    if bad.any():
        values = target[bad].unique()[:8].tolist()
        raise ValueError(f"Labels {values} are not among the model's {n} classes (0 to {n - 1}): its output has "
                         f"{n} columns. Give the model's last layer one output per class (at least "
                         f"{int(target.max()) + 1}), or map the labels to 0..{n - 1}.")


def _n_inp_hint(model: Any, xb: tuple, batch: Any, n_inp: int) -> str | None:
    """Why `model(*xb)` failed when the model takes another number of positional inputs than the `n_inp` it was
    given, with the n_inp that fits; None when the inputs do fit its signature (the TypeError came from inside)."""
    try: sig = inspect.signature(getattr(model, "forward", model))  # a Module is called through its forward
    except (TypeError, ValueError): return None
    try:
        sig.bind(*xb)
        return None
    except TypeError: pass
    params = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in params if p.default is p.empty]
    n_items = len(batch) if isinstance(batch, (tuple, list)) else 1
    fits = [k for k in range(len(required), len(params) + 1) if k < n_items] if params else []
    if not fits:
        return (f"The model's forward takes {len(required)} input(s) ({', '.join(required)}) but each batch is "
                f"{describe(batch)}; BasicTrainCB(n_inp={n_inp}) gives it the first {n_inp} item(s) and the rest "
                f"are targets. Make the loader yield (inputs..., targets...) for it.")
    k = fits[0]
    return (f"The model's forward takes {k} input(s) ({', '.join(p.name for p in params[:k])}) but "
            f"BasicTrainCB(n_inp={n_inp}) gives it the first {n_inp} item(s) of each batch ({describe(batch)}) and "
            f"takes the rest as targets: pass BasicTrainCB(n_inp={k}).")


class BasicTrainCB(Callback):
    '''The plain PyTorch training step: `out = model(*xb)`, `loss = loss_func(preds, *yb)`, backward, step, zero_grad

    `n_inp`: how many leading items of a tuple batch are the model's positional inputs; the rest are targets. A batch
    with no targets (`trainer.yb == ()`: a tensor batch, or a tuple of `n_inp` inputs) takes a loss of the predictions
    only, `loss_func(preds)` (contrastive learning); a loss that needs targets is refused at the first batch. A
    mapping batch (a dict, a Hugging Face `BatchEncoding`) is passed whole as keyword arguments, `model(**batch)`,
    with `batch['labels']` (or `'label'`) as its target. `trainer.preds` is the output's `logits` where it has some
    (a Hugging Face output), else the output (a tensor, a tuple of tensors); with `loss_func=None` the loss is the
    output's own `loss`. The fit's first batch is checked for form, device and labels (check_inputs, check_targets).
    '''

    # Class defaults, so subclasses with their own __init__ (or their own before_fit) work unchanged.
    n_inp, checked, targets_checked, _mapping, _reader, _fit = 1, False, False, False, None, None

    def __init__(self, n_inp: int = 1):
        self.n_inp = whole_number("n_inp", n_inp, owner="BasicTrainCB", what="inputs at the front of each batch")

    def __repr__(self) -> str: return f"BasicTrainCB(n_inp={self.n_inp})" if self.n_inp != 1 else "BasicTrainCB()"

    def before_fit(self, trainer):
        trainer.n_inp = self.n_inp
        self._begin(trainer)

    def _begin(self, trainer) -> None:
        # The fit's first batch is checked afresh at every fit: from before_fit, or, in a subclass whose before_fit
        # does not call this one, at the first predict or get_loss of the fit (`trainer.setup` is new at each fit).
        self._fit, self.checked, self.targets_checked = trainer.setup, False, False

    def predict(self, trainer):
        # What the batch and the output look like is read at the fit's first batch, not at every batch.
        if not self.checked or self._fit is not trainer.setup: return self._first_predict(trainer)
        out = trainer.out = trainer.model(**trainer.xb[0]) if self._mapping else trainer.model(*trainer.xb)
        trainer.preds = out if self._reader is None else self._reader(out)

    def _first_predict(self, trainer) -> None:
        if self._fit is not trainer.setup: self._begin(trainer)
        check_inputs(trainer, self.n_inp)
        self._mapping = len(trainer.xb) == 1 and isinstance(trainer.xb[0], Mapping)
        if not self._mapping:
            try: out = trainer.model(*trainer.xb)
            except TypeError as e:
                hint = _n_inp_hint(trainer.model, trainer.xb, trainer.batch, self.n_inp)
                if hint is None: raise
                raise TypeError(f"{e}. {hint}") from e
        else:
            try: out = trainer.model(**trainer.xb[0])
            except TypeError as e:
                if "keyword argument" not in str(e): raise
                raise TypeError(f"BasicTrainCB passes a mapping batch as keyword arguments, model(**batch), but the "
                                f"model does not take them ({e}); the batch is {describe(trainer.batch)}. Make the "
                                f"model's forward take those names, or make the loader yield tuples (inputs..., "
                                f"targets...), e.g. DataLoaders.from_dataset_dict(dd, bs, inputs=[...], targets=[...]).") from e
        trainer.out = out
        self._reader, self.checked = output_reader(out), True
        trainer.preds = out if self._reader is None else self._reader(out)

    def get_loss(self, trainer):
        if trainer.loss_func is None:
            trainer.loss = output_loss(trainer.out)
            return
        if self._fit is not trainer.setup: self._begin(trainer)  # predict is the subclass's own
        if not self.targets_checked:
            check_targets(trainer, self.n_inp)
            check_shapes(trainer)
            trainer.loss = trainer.loss_func(trainer.preds, *trainer.yb)
            check_loss(trainer.loss, trainer.loss_func)
            self.targets_checked = True
            return
        trainer.loss = trainer.loss_func(trainer.preds, *trainer.yb)

    def backward(self, trainer): trainer.loss.backward()
    # Every optimizer steps on the one backward pass (several: e.g. SparseAdam for embeddings beside Adam).
    # `trainer.opt` when there is one (read here at each batch, not kept: as in the original AIsaac, a step callback,
    # say an AccelerateCB subclass's before_fit, may replace it with a wrapped optimizer, Accelerate's, which unscales
    # fp16 gradients, and leave `opts` as it was), else every one in `trainer.opts`.
    def step(self, trainer):
        opt = trainer.opt
        if opt is not None: opt.step()
        else:
            for o in trainer.opts.values(): o.step()

    def zero_grad(self, trainer):
        opt = trainer.opt
        if opt is not None: opt.zero_grad()
        else:
            for o in trainer.opts.values(): o.zero_grad()
