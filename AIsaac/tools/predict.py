"""`Trainer.get_preds` and `Trainer.predict`: the model's outputs on a loader or a batch, outside any fit.

They run the trainer's own step callbacks on the batches, as a validation phase does (in eval mode, under
`torch.no_grad()`): DeviceCB or AccelerateCB place model and batches (else each batch goes to the model's device),
BasicTrainCB splits the batch (`n_inp`, mapping batches) and reads the output's logits, MixedPrecisionCB autocasts,
AccelerateCB gathers from all processes. No loss is computed, and the callbacks after the step (metrics, loggers,
the table, checkpoints) do not run. Everything is put back afterwards (`restoring`): the model's weights and modes,
the optimizer, the callbacks and the trainer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

import torch

from ..callback import Callback, Order, callback_order, flatten_callbacks
from ..exceptions import CancelFitException
from ..runtime.placement import model_device, to_cpu, to_device
from .sandbox import restoring

if TYPE_CHECKING:
    from ..trainer import Trainer

class Predictions(NamedTuple):
    """What `get_preds` returns: `preds, targets = trainer.get_preds()`, or `.preds` and `.targets` by name.

    Typed as the tensors they are for one output and one target; a model with several outputs gives a tuple of them
    (a dict for a mapping), several targets a tuple, `decode=True` a list of class names or a tensor of indices."""
    preds: torch.Tensor
    targets: torch.Tensor


def concat(parts: list[Any]) -> Any:
    """Per-batch outputs joined along the batch dimension, keeping their structure (tensor, tuple, list, dict)."""
    first = parts[0]
    if isinstance(first, torch.Tensor): return torch.cat(parts)
    if isinstance(first, dict): return {k: concat([p[k] for p in parts]) for k in first}
    if isinstance(first, (tuple, list)): return type(first)(concat(list(ps)) for ps in zip(*parts))
    return parts


class PredictionCB(Callback):
    '''Collects `trainer.preds` (and the targets) of each batch on the CPU, for `get_preds`'''

    order = Order.LAST  # after AccelerateCB's gather and every other step callback

    def __init__(self, with_targets: bool, act: Callable | None):
        self.with_targets, self.act = with_targets, act
        self.preds: list[Any] = []
        self.targets: list[Any] = []
        self.no_targets = False

    def before_fit(self, trainer): self.device = model_device(trainer.model)  # once the model is placed

    def before_batch(self, trainer):
        # Without DeviceCB the batch goes where the model is; with it, this is already so and moves nothing.
        trainer.batch = to_device(trainer.batch, self.device)

    def after_batch(self, trainer):
        if self.with_targets and not trainer.yb:
            self.no_targets = True  # get_preds raises, outside the fit
            raise CancelFitException()
        preds = trainer.preds if self.act is None else self.act(trainer.preds)
        self.preds.append(to_cpu(preds))
        if self.with_targets: self.targets.append(to_cpu(trainer.yb))


def _no_loss(trainer) -> None: trainer.loss = None


def _tta(predict: Callable, tfms: Sequence[Callable], act: Callable | None) -> Callable:
    """`predict` run once per input transform (applied to the first input), its predictions (through `act`) averaged."""
    def run(trainer) -> None:
        xb, outs = trainer.xb, []
        for t in tfms:
            trainer.xb = (t(xb[0]), *xb[1:])
            predict(trainer)
            outs.append(trainer.preds if act is None else act(trainer.preds))
        trainer.xb, trainer.preds = xb, torch.stack(outs).mean(0)
    return run


def step_callbacks(trainer: Trainer) -> list[Any]:
    """The callbacks a prediction runs: those that place and wrap the step (ordered before `Order.GUARD`: launch,
    device, mixed precision, compile) and those that predict, with the members of their groups."""
    predictors = {id(getattr(m, "__self__", m)) for m in trainer.plan["predict"]}
    keep = [cb for cb in trainer.cbs if callback_order(cb) < Order.GUARD or id(cb) in predictors]
    return flatten_callbacks(keep)


def predictions(trainer: Trainer, dl: Any, with_targets: bool, tta: Sequence[Callable] | None,
                act: Callable | None, decode: bool = False) -> Any:
    """`get_preds`: a validation-only fit of `dl` with the step callbacks, collecting the predictions, all put back."""
    from ..callbacks.basic_train import BasicTrainCB
    from ..data.loaders import DataLoaders
    collect = PredictionCB(with_targets, None if tta else act)
    with restoring(trainer):
        keep = {id(cb) for cb in step_callbacks(trainer)}
        trainer.remove_callbacks([cb for cb in trainer.cbs if id(cb) not in keep])
        if not trainer.plan["predict"]: trainer.add_callbacks(BasicTrainCB(trainer.n_inp))

        def wrapper(event: str, name: str, method: Callable) -> Callable:
            # No loss is computed; with `tta`, the prediction runs once per transform.
            if event == "get_loss": return _no_loss
            return _tta(method, tta, act) if tta and event == "predict" else method
        trainer.wrap_plan(wrapper)
        trainer.dls = DataLoaders(None, trainer.dls.valid if dl is None else dl)
        trainer.fit(1, train=False, callbacks=[collect])
    if collect.no_targets:
        raise ValueError("get_preds: the loader's batches have no targets (expected (inputs, targets), or a "
                         "mapping with 'labels'); pass with_targets=False.")
    if not collect.preds: raise ValueError("get_preds: the loader gave no batches.")
    preds = concat(collect.preds)
    if decode: preds = decoded(trainer, preds, dl)
    if not with_targets: return preds
    targets = concat(collect.targets)
    return Predictions(preds, targets[0] if len(targets) == 1 else targets)


def decoded(trainer: Trainer, preds: torch.Tensor, dl: Any) -> list[str] | torch.Tensor:
    """Each row's predicted class (the arg-max): its name where the data has class names, else its index."""
    from ..data.labels import class_names
    names = class_names(dl) or class_names(getattr(trainer.dls, "train", None))
    idx = preds.argmax(dim=-1)
    return [names[i] for i in idx.tolist()] if names else idx


def get_preds(trainer: Trainer, dl: Any = None, with_targets: bool = True, tta: Sequence[Callable] | None = None,
              act: Callable | None = None, decode: bool = False) -> Any:
    """Predictions for every batch of `dl` (default `dls.valid`), concatenated on the CPU, with the targets if asked
    (a `Predictions(preds, targets)` pair).

    Tuple predictions (several heads) stay tuples of tensors; several targets come as a tuple, one as a tensor.
    `act` (e.g. `partial(torch.softmax, dim=-1)`) is applied to the predictions; `tta` is a list of transforms of
    the (first) input whose predictions are averaged (include `lambda x: x` to count the plain input too).
    With `with_targets=False` a batch may also be the inputs alone.
    `decode=True` returns, instead of the outputs, each row's predicted class (the arg-max): its name where the
    data has class names (a `ClassLabel` feature of `dl`'s or the training data), else its index (a tensor).
    """
    return predictions(trainer, dl, with_targets, tta, act, decode)


def predict(trainer: Trainer, x: Any, tta: Sequence[Callable] | None = None, act: Callable | None = None) -> Any:
    """The model's output for the input batch `x` (for one item pass `x[None]`; a tuple for several inputs, a
    mapping for a Hugging Face model), on the CPU; `tta`/`act` as in get_preds."""
    return trainer.get_preds([x], with_targets=False, tta=tta, act=act)
