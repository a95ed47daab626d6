"""Splitters: functions `splitter(model)` that cut a model's parameters into groups for `Trainer(..., splitter=...)`.

A splitter returns a list of groups, each a list (or iterable) of parameters or a dict in the form torch optimizers
take (`{'params': [...], 'weight_decay': 0., ...}`). The groups are the units of discriminative learning rates
(`fit(n, lr=slice(lo, hi))` gives the first group `lo` and the last `hi`) and of freezing (`trainer.freeze()`
trains only the last group). Groups that carry the same `'layer_group'` value count as one group for both (the
`no_weight_decay` halves of one group do). A group's `'lr_scale'` (timm's layer-decay groups,
`timm.optim.param_groups_layer_decay`) multiplies its learning rate.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from torch import nn

# Normalisation layers: kept trainable by `freeze` and left out of weight decay by `no_weight_decay`. timm's norm
# layers (BatchNormAct2d, LayerNorm2d, GroupNorm1, ...) subclass these.
NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
                                *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))

Splitter = Callable[[nn.Module], list]

# Where torchvision (and most hand-written) classifiers keep their last layers.
_HEAD_NAMES = ("fc", "classifier", "heads", "head")


def norm_params(model: nn.Module) -> set[nn.Parameter]:
    """The parameters of `model`'s normalisation layers (BatchNorm, LayerNorm, GroupNorm, ... and timm's)."""
    return {p for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)}


def find_head(model: nn.Module) -> nn.Module:
    """The classifier head: timm's `get_classifier()`, else a child named fc/classifier/heads/head, else the last
    child that has parameters."""
    get = getattr(model, "get_classifier", None)
    if callable(get) and isinstance(head := get(), nn.Module) and any(True for _ in head.parameters()): return head
    for name in _HEAD_NAMES:
        head = getattr(model, name, None)
        if isinstance(head, nn.Module) and any(True for _ in head.parameters()): return head
    children = [c for c in model.children() if any(True for _ in c.parameters())]
    if len(children) < 2:
        raise ValueError(f"body_head_splitter could not find the head of {type(model).__name__}: it has no "
                         f"get_classifier() (timm), no child named {'/'.join(_HEAD_NAMES)}, and fewer than two "
                         f"children with parameters. Write a splitter: lambda m: [body_params, head_params].")
    return children[-1]


def body_head_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Two groups, `[body, head]`: the head is the classifier (see `find_head`), the body everything else.

    Works for timm models (`get_classifier`) and torchvision ones (`fc`, `classifier`, `heads`, `head`).
    """
    head = {id(p) for p in find_head(model).parameters()}
    params = list(model.parameters())
    return [[p for p in params if id(p) not in head], [p for p in params if id(p) in head]]


def _as_dict(group: Any) -> dict[str, Any]:
    if isinstance(group, dict): return {**group, "params": list(group["params"])}
    return {"params": list(group)}


def no_weight_decay(splitter: Splitter | None = None) -> Splitter:
    """A splitter that cuts each group of `splitter` (default: all parameters in one group) in two: the weights, and
    the biases and normalisation weights with `weight_decay=0.` (decaying those only hurts, as in BERT or timm).

    Both halves of a group keep its place for learning rates and freezing (a shared `'layer_group'`), so
    `no_weight_decay(body_head_splitter)` still has two groups for `lr=slice(lo, hi)` and `freeze()`.
    """
    def split(model: nn.Module) -> list[dict[str, Any]]:
        groups = splitter(model) if splitter is not None else [model.parameters()]
        norms = {id(p) for p in norm_params(model)}
        out = []
        for i, g in enumerate(groups):
            g = _as_dict(g)
            layer = g.pop("layer_group", i)
            skip = [p for p in g["params"] if p.ndim <= 1 or id(p) in norms]  # biases and norm weights
            keep = [p for p in g["params"] if not (p.ndim <= 1 or id(p) in norms)]
            if keep: out.append({**g, "params": keep, "layer_group": layer})
            if skip: out.append({**g, "params": skip, "weight_decay": 0., "layer_group": layer})
        return out
    return split


def param_groups(model: nn.Module, splitter: Splitter | None = None) -> list[dict[str, Any]]:
    """`splitter(model)` as a list of param-group dicts, each with a `'layer_group'` (its index unless it gave one).

    Raises when a parameter is in two groups or in none (a frozen-forever parameter must still be in a group).
    """
    raw: Iterable[Any] = splitter(model) if splitter is not None else [model.parameters()]
    if isinstance(raw, (dict, nn.Module)) or not isinstance(raw, Iterable):
        raise TypeError(f"The splitter must return a list of parameter lists (or param-group dicts); got "
                        f"{type(raw).__name__}.")
    groups = []
    for i, g in enumerate(raw):
        g = _as_dict(g)
        g.setdefault("layer_group", i)
        groups.append(g)
    seen: dict[int, int] = {}
    for i, g in enumerate(groups):
        for p in g["params"]:
            if id(p) in seen:
                raise ValueError(f"The splitter put a parameter of shape {tuple(p.shape)} in groups {seen[id(p)]} and "
                                 f"{i}; each parameter must be in exactly one group.")
            seen[id(p)] = i
    # Parameters created frozen (requires_grad=False) may be left out, as timm's layer-decay groups leave them.
    missing = [n for n, p in model.named_parameters() if id(p) not in seen and p.requires_grad]
    if missing:
        raise ValueError(f"The splitter left out parameters {missing[:5]}{' ...' if len(missing) > 5 else ''}; every "
                         f"parameter must be in a group (freeze them with trainer.freeze_to rather than leaving them out).")
    return groups


def layer_index(groups: list[dict[str, Any]]) -> list[int]:
    """For each group, the index of its layer group (groups sharing a `'layer_group'` share one), in order of first use."""
    order: dict[Any, int] = {}
    return [order.setdefault(g["layer_group"], len(order)) for g in groups]
