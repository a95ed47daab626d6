"""Building the trainer's optimizers: learning rates spread over the parameter groups, one optimizer or several,
kept between fits (`fit(..., reset_opt=False)`) while the parameters are the same.

`opt_func(params, lr)` gets `model.parameters()` in the tutorial's case (no splitter, one learning rate), else the
splitter's groups as param-group dicts, each with its own `'lr'`. It returns an optimizer, or a dict of named
optimizers (a GAN's generator and discriminator): `trainer.opts` holds them by name (`{'opt': opt}` for one), and
`trainer.opt` is the optimizer when there is one (None when there are several).
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable, Iterable, Sequence

from torch import nn

from ..models.splitters import Splitter, layer_index, norm_params, param_groups
from .messages import warn

LR = float | slice | Sequence[float]


def _positive_real(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and type(v).__name__ != "bool_" \
        and math.isfinite(v) and float(v) > 0


def check_lr(lr: Any) -> Any:
    """`lr` with numpy scalars made Python floats; raise ValueError unless `lr` is a finite positive real (numpy scalars too), a `slice(lo, hi)` of them (lo may be
    None), or a non-empty sequence of them (one per param group)."""
    if isinstance(lr, slice):
        ok = _positive_real(lr.stop) and (lr.start is None or _positive_real(lr.start)) and lr.step is None
    elif isinstance(lr, (list, tuple)): ok = len(lr) > 0 and all(_positive_real(v) for v in lr)
    else: ok = _positive_real(lr)
    if not ok:
        raise ValueError(f"lr must be a number > 0 and finite (for example 1e-3; numpy scalars work), a slice(lo, hi) of "
                         f"them, or a list of them, one per param group; got {lr!r}.")
    if isinstance(lr, slice): return slice(None if lr.start is None else float(lr.start), float(lr.stop))
    if isinstance(lr, (list, tuple)): return type(lr)(float(v) for v in lr)
    return float(lr)


def spread_lrs(lr: LR, n: int) -> list[float]:
    """The learning rate of each of `n` groups from fit's `lr`, as fastai spreads them.

    A number: every group. `slice(lo, hi)`: from `lo` for the first group to `hi` for the last, evenly on a log
    scale (one group gets `hi`). `slice(hi)`: `hi / 10` for every group but the last, which gets `hi`.
    A sequence: one learning rate per group.
    """
    if isinstance(lr, slice):
        hi = float(lr.stop)
        if lr.start is None: return [hi / 10] * (n - 1) + [hi]
        lo = float(lr.start)
        if n == 1: return [hi]
        return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    if isinstance(lr, (str, bytes)) or not isinstance(lr, Sequence):
        return [float(lr)] * n
    lrs = [float(v) for v in lr]
    if len(lrs) != n:
        raise ValueError(f"lr has {len(lrs)} learning rates but the splitter makes {n} parameter groups; give one per "
                         f"group, a single number, or slice(lo, hi) to spread them.")
    return lrs


def split_with_lrs(model: nn.Module, splitter: Splitter | None, lr: LR) -> list[dict[str, Any]]:
    """The splitter's groups, each with its `'lr'`: spread over the layer groups, times its `'lr_scale'` (timm)."""
    groups = param_groups(model, splitter)
    idx = layer_index(groups)
    lrs = spread_lrs(lr, max(idx, default=0) + 1)
    for g, i in zip(groups, idx): g["lr"] = lrs[i] * g.get("lr_scale", 1.)
    return groups


def _signature(groups: list[dict[str, Any]]) -> list[tuple[int, ...]]:
    return [tuple(id(p) for p in g["params"]) for g in groups]


class Optimizers:
    """What the trainer keeps about its optimizers between fits: the optimizers by name and the groups they were
    built from, so `reset_opt=False` can tell whether the parameters are still the same."""

    def __init__(self, opts: dict[str, Any], model: nn.Module, signature: list[tuple[int, ...]]):
        self.opts, self.model, self.signature = opts, model, signature

    @property
    def single(self) -> Any:
        """The optimizer when there is one, else None."""
        return next(iter(self.opts.values())) if len(self.opts) == 1 else None

    @property
    def first(self) -> Any:
        """The first optimizer: the one whose steps count as the fit's (`trainer.step`)."""
        return next(iter(self.opts.values()))


def build_optimizers(opt_func: Callable, model: nn.Module, splitter: Splitter | None, lr: LR) -> Optimizers:
    """A new optimizer (or several) from `opt_func`, with the learning rates of `lr` spread over the groups."""
    if splitter is None and not isinstance(lr, (slice, Sequence)):
        # The tutorial's call, unchanged: any opt_func(params, lr) works, torch's or hand-written.
        out = opt_func(model.parameters(), float(lr))
        signature = [tuple(id(p) for p in model.parameters())]
    else:
        groups = split_with_lrs(model, splitter, lr)
        out = opt_func(groups, groups[-1]["lr"])
        signature = _signature(groups)
    opts = out if isinstance(out, dict) else {"opt": out}
    for name, opt in opts.items():
        if opt is None:  # a forgotten `return`; anything else may be a stand-in the step callbacks know how to use
            raise TypeError(f"opt_func returned None for {name!r}; it must return an optimizer (or a dict of named "
                            f"optimizers), like torch.optim.Adam(params, lr).")
    return Optimizers(opts, model, signature)


def reuse_optimizers(kept: Optimizers, model: nn.Module, splitter: Splitter | None, lr: LR) -> bool:
    """Set the kept optimizers' learning rates for a new fit and return True, or return False (with a warning) when
    the model's parameters or groups changed since they were built."""
    groups = split_with_lrs(model, splitter, lr)
    if kept.model is not model or _signature(groups) != kept.signature:
        warn("fit(reset_opt=False): the model's parameters (or the splitter's groups) changed since the "
             "optimizer was built, so a new optimizer is built and the old state is dropped.", UserWarning)
        return False
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    for opt in kept.opts.values():
        for g in opt.param_groups:
            if g["params"] and id(g["params"][0]) in lr_of: g["lr"] = lr_of[id(g["params"][0])]
            # A scheduler built in the new fit starts from the new lr (torch keeps the first `initial_lr` it saw).
            g.pop("initial_lr", None)
    return True


def fit_optimizers(kept: Optimizers | None, opt_func: Callable, model: nn.Module, splitter: Splitter | None, lr: LR,
                   reset_opt: bool) -> Optimizers:
    """The optimizers for a fit: the `kept` ones when `reset_opt` is False and they still fit the model (their state
    carried over, the lrs of `lr` set), else new ones. Not yet set on the trainer: a refused resume changes nothing."""
    if reset_opt or kept is None or not reuse_optimizers(kept, model, splitter, lr):
        kept = build_optimizers(opt_func, model, splitter, lr)
    return kept


def freeze_to(model: nn.Module, splitter: Splitter | None, opts: Iterable[Any], n: int, train_norm: bool = True) -> None:
    """Train only the splitter's groups from the `n`-th on (`n < 0` counts from the end); the others' parameters get no
    gradients and no optimizer state (in `opts`). With `train_norm`, normalisation layers train everywhere."""
    groups = param_groups(model, splitter)
    idx = layer_index(groups)
    n_groups = max(idx, default=0) + 1
    first = n + n_groups if n < 0 else n
    if not 0 <= first < n_groups:
        raise ValueError(f"freeze_to({n}) would leave no group training: the splitter makes {n_groups} groups "
                         f"(trainer.unfreeze() trains them all).")
    norms = {id(p) for p in norm_params(model)} if train_norm else set()
    opts = list(opts)
    for g, i in zip(groups, idx):
        for p in g["params"]:
            train = i >= first or id(p) in norms
            p.requires_grad_(train)
            if not train:
                p.grad = None
                for opt in opts: opt.state.pop(p, None)
