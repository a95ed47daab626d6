"""The checks a fit makes before any event runs: arguments, the step phases someone does, a non-empty loader."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .events import EXCLUSIVE_PHASES
from .exceptions import CallbackSetupError
from .runtime.args import whole_number
from .runtime.batch import loader_length


ORDER = "Trainer(dls, loss_func, opt_func, model, callbacks)"
_NO_MODEL = object()


def _what(obj: Any) -> str:
    return f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"


def check_model(model: Any) -> None:
    """Raise for a model that is not a module instance (a class passed uncalled, an optimizer in its place)."""
    if isinstance(model, type):
        if issubclass(model, torch.optim.Optimizer) or not issubclass(model, nn.Module):
            raise TypeError(f"model is {_what(model)}, not a model: the arguments go {ORDER} (fastai's Learner takes "
                            f"the model second; AIsaac takes it fourth).")
        raise TypeError(f"model is the class {model.__name__}; pass an instance: {model.__name__}() (with its "
                        f"arguments).")


def check_trainer_args(dls: Any, loss_func: Any, opt_func: Any, splitter: Any, model: Any = _NO_MODEL) -> None:
    """Raise for Trainer arguments that could not work, naming the fix (the argument order, where they are swapped)."""
    # fastai's order, Learner(dls, model, loss_func, opt_func), or other swaps: a module, a loss function or a built
    # optimizer where the optimizer's class belongs, an optimizer class where the loss belongs.
    if isinstance(opt_func, (nn.Module, torch.optim.Optimizer)) or getattr(opt_func, "__module__", None) == \
            "torch.nn.functional" or (isinstance(loss_func, type) and issubclass(loss_func, torch.optim.Optimizer)):
        given = ", ".join(f"{n}={_what(v)}" for n, v in (("loss_func", loss_func), ("opt_func", opt_func)))
        hint = (" an optimizer class or function, like torch.optim.Adam (not a built optimizer)"
                if isinstance(opt_func, torch.optim.Optimizer) else " an optimizer class, like torch.optim.Adam")
        raise TypeError(f"The Trainer's arguments go {ORDER}, with opt_func{hint}; got {given}. fastai's Learner "
                        f"takes (dls, model, loss_func, opt_func): reorder them.")
    if model is not _NO_MODEL: check_model(model)
    if not callable(opt_func):
        raise TypeError(f"opt_func must be callable, like torch.optim.Adam or functools.partial(torch.optim.SGD, "
                        f"momentum=0.9); got {type(opt_func).__name__}.")
    if splitter is not None and not callable(splitter):
        raise TypeError(f"splitter must be a function of the model returning parameter groups, like "
                        f"body_head_splitter; got {type(splitter).__name__}.")
    if isinstance(dls, (tuple, list)):
        raise TypeError(f"dls must be a DataLoaders (with .train and .valid), not a {type(dls).__name__}; wrap the "
                        f"loaders: DataLoaders(train_dl, valid_dl).")
    if isinstance(loss_func, type):
        raise TypeError(f"loss_func is the class {loss_func.__name__}; pass an instance: {loss_func.__name__}().")


def optional_count(name: str, value: Any, owner: str, what: str, minimum: int = 1) -> int | None:
    """`value` as a whole number of at least `minimum`, or None."""
    return None if value is None else whole_number(name, value, minimum=minimum, owner=owner, what=what)


def fit_lengths(n_epochs: Any, max_steps: Any, valid_every: Any, train: bool) -> tuple[int | None, int | None, int | None]:
    """`fit`'s n_epochs, max_steps and valid_every, checked; n_epochs is 3 when neither it nor max_steps is given
    (None, unbounded, with only max_steps)."""
    max_steps = optional_count("max_steps", max_steps, "Trainer.fit", "optimizer steps to train")
    valid_every = optional_count("valid_every", valid_every, "Trainer.fit", "optimizer steps between validations")
    if n_epochs is None: return (3 if max_steps is None or not train else None), max_steps, valid_every
    return whole_number("n_epochs", n_epochs, minimum=0, owner="Trainer.fit", what="epochs to train"), max_steps, \
        valid_every


def check_step_phases(trainer: Any, train: bool, valid: bool) -> None:
    """Raise before any event when the fit could not train or would silently do nothing (or has no model to run)."""
    check_model(trainer.model)  # the Trainer does not pass its model to check_trainer_args yet
    phases = EXCLUSIVE_PHASES if train else ("predict", "get_loss") if valid else ()
    missing = [ev for ev in phases if not any(ev not in getattr(getattr(m, "__self__", m), "observes", ())
                                              for m in trainer.plan.get(ev, ()))]
    if missing:
        raise CallbackSetupError(f"No callback does the step phase{'s' * (len(missing) > 1)} {', '.join(missing)}, "
                                 f"so this fit would {'train' if train else 'compute'} nothing. Add BasicTrainCB() "
                                 f"(the plain PyTorch step; MixedPrecisionCB needs it too), or a "
                                 f"callback with those methods.")


def check_train_loader(dls: Any) -> None:
    """Raise when the training loader has a length of 0 (a loader without a length is a stream: it is accepted)."""
    if loader_length(dls.train) == 0:
        raise ValueError("The training loader is empty (0 batches), so the fit would only validate. Check the "
                         "dataset's length, and batch_size with drop_last=True; or pass train=False to validate.")

