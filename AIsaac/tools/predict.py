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
    """What `get_preds` returns, always: `preds, targets = trainer.get_preds()`, or `.preds` and `.targets` by name.

    `preds` is typed as the tensor it is for one output; a model with several outputs gives a tuple of them (a dict
    for a mapping), `decode=True` a list of class names or a tensor of indices. `targets` is a tensor for one target,
    a tuple for several, and None when the batches have none (or `with_targets=False`)."""
    preds: torch.Tensor
    targets: Any


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

    def __init__(self, with_targets: bool | None, act: Callable | None):
        # None: the targets where the batches have them (a loader from `test_dl`), else predictions alone.
        self.with_targets, self.optional, self.act = with_targets is not False, with_targets is None, act
        self.preds: list[Any] = []
        self.targets: list[Any] = []
        self.no_targets = False

    def before_fit(self, trainer): self.device = model_device(trainer.model)  # once the model is placed

    def before_batch(self, trainer):
        # Without DeviceCB the batch goes where the model is; with it, this is already so and moves nothing.
        trainer.batch = to_device(trainer.batch, self.device)

    def after_batch(self, trainer):
        if self.with_targets and not trainer.yb:
            if self.optional and not self.targets: self.with_targets = False  # unlabelled data: predictions alone
            else:
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


def predictions(trainer: Trainer, dl: Any, with_targets: bool | None, tta: Sequence[Callable] | None,
                act: Callable | None, decode: bool = False) -> Predictions:
    """`get_preds`: a validation-only fit of `dl` with the step callbacks, collecting the predictions, all put back."""
    from ..callbacks.basic_train import BasicTrainCB
    from ..data.loaders import DataLoaders
    if with_targets is None and not getattr(dl, "for_prediction", False): with_targets = True
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
        some = " (after some that had them)" if collect.targets else ""
        raise ValueError(f"get_preds: the loader's batches have no targets{some} (expected (inputs, targets), or a "
                         f"mapping with 'labels'); pass with_targets=False to predict without them.")
    if not collect.preds: raise ValueError("get_preds: the loader gave no batches.")
    preds = concat(collect.preds)
    if decode: preds = decoded(trainer, preds, dl)
    targets: Any = None
    if collect.with_targets and collect.targets:
        targets = concat(collect.targets)
        if len(targets) == 1: targets = targets[0]
    return Predictions(preds, targets)


def decoded(trainer: Trainer, preds: torch.Tensor, dl: Any) -> list[str] | torch.Tensor:
    """Each row's predicted class (the arg-max): its name where the data has class names, else its index."""
    from ..data.labels import class_names
    names = class_names(dl) or class_names(getattr(trainer.dls, "train", None))
    idx = preds.argmax(dim=-1)
    return [names[i] for i in idx.tolist()] if names else idx


def get_preds(trainer: Trainer, dl: Any = None, with_targets: bool | None = None,
              tta: Sequence[Callable] | None = None, act: Callable | None = None, decode: bool = False) -> Predictions:
    """Predictions for every batch of `dl` (default `dls.valid`), concatenated on the CPU, with the targets: always a
    `Predictions(preds, targets)` pair, `targets` None when there are none.

    `with_targets`: True requires targets in every batch (an error names the batches without); False leaves them
    out (a batch may then be the inputs alone); None, the default, is True except for a loader made by
    `dls.test_dl`, whose targets are taken where its batches have them.

    Tuple predictions (several heads) stay tuples of tensors; several targets come as a tuple, one as a tensor.
    `act` (e.g. `partial(torch.softmax, dim=-1)`) is applied to the predictions; `tta` is a list of transforms of
    the (first) input whose predictions are averaged (include `lambda x: x` to count the plain input too).
    `decode=True` returns, instead of the outputs, each row's predicted class (the arg-max): its name where the
    data has class names (a `ClassLabel` feature of `dl`'s or the training data), else its index (a tensor).
    """
    return predictions(trainer, dl, with_targets, tta, act, decode)


def predict(trainer: Trainer, x: Any, tta: Sequence[Callable] | None = None, act: Callable | None = None) -> Any:
    """The model's output for the input batch `x` (for one item pass `x[None]`; a tuple for several inputs, a
    mapping for a Hugging Face model), on the CPU; `tta`/`act` as in get_preds."""
    return trainer.get_preds([x], with_targets=False, tta=tta, act=act).preds
