"""`Hook` and `Hooks`: forward hooks that carry their own state, the course's way to look inside a model; `append_stats`,
`get_hist` and `get_min`: the activation statistics they usually record, and their readings.

A hook function is called as `func(hook, module, inputs, output)` after each forward pass of its module; it keeps
what it records on `hook` (by convention `hook.stats`). Remove hooks when done: `Hooks` is a context manager, and
`HooksCallback` (AIsaac.callbacks.hooks) removes its hooks at the end of every fit, however the fit ends.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Iterable, Iterator, overload

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

# func(hook, module, inputs, output); its return value is ignored (the module's output is never replaced).
HookFunc = Callable[["Hook", nn.Module, tuple, Any], Any]


def _check_func(func: Any, who: str) -> None:
    if not callable(func):
        raise TypeError(f"{who}: func must be callable as func(hook, module, inputs, output), like append_stats; "
                        f"got {type(func).__name__}.")


class Hook:
    """A forward hook on `module` that calls `func(hook, module, inputs, output)` after each of its forward passes.

    `hook` is this object: the function keeps its records on it (`append_stats` fills `hook.stats`).
    Call `remove()` when done, or use it as a context manager (`with Hook(model[0], f) as h: ...`).
    """

    stats: Any = None  # what the hook function records (append_stats: a tuple of means, stds and histograms)

    def __init__(self, module: nn.Module, func: HookFunc):
        if not isinstance(module, nn.Module):
            raise TypeError(f"Hook: module must be a torch.nn.Module; got {type(module).__name__}.")
        _check_func(func, "Hook")
        self.module, self.func = module, func
        self.handle: RemovableHandle | None = module.register_forward_hook(self._call)

    def _call(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        self.func(self, module, inputs, output)  # returns None, so the module's output is never replaced

    @property
    def removed(self) -> bool:
        """Whether the hook is off its module."""
        return self.handle is None

    def remove(self) -> None:
        """Take the hook off its module (again is a no-op)."""
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def __enter__(self) -> "Hook": return self
    def __exit__(self, *exc: Any) -> None: self.remove()

    def __repr__(self) -> str:
        return f"Hook({type(self.module).__name__}, {getattr(self.func, '__name__', type(self.func).__name__)}" + \
            (", removed)" if self.removed else ")")


class Hooks(Sequence):
    """One `Hook(module, func)` per module of `modules`, as a sequence; a context manager that removes them all on exit.

    `modules`: an iterable of modules, or a module, which stands for its direct children (as iterating an
    `nn.Sequential` gives them): `with Hooks(model, append_stats) as hooks: model(xb)`.
    """

    def __init__(self, modules: nn.Module | Iterable[nn.Module], func: HookFunc):
        _check_func(func, "Hooks")
        if isinstance(modules, nn.Module):
            children = list(modules.children())
            if not children:
                raise ValueError(f"Hooks: {type(modules).__name__} has no child modules; pass [module] to hook the "
                                 f"module itself.")
            modules = children
        elif isinstance(modules, (str, bytes)) or not isinstance(modules, Iterable):
            raise TypeError(f"Hooks: modules must be a module or an iterable of modules (e.g. model.modules() or "
                            f"[model[0], model[2]]); got {type(modules).__name__}.")
        modules = list(modules)
        bad = [type(m).__name__ for m in modules if not isinstance(m, nn.Module)]
        if bad: raise TypeError(f"Hooks: every item of modules must be a torch.nn.Module; got {bad[0]}.")
        self.hooks = [Hook(m, func) for m in modules]

    @overload
    def __getitem__(self, i: int) -> Hook: ...
    @overload
    def __getitem__(self, i: slice) -> list[Hook]: ...
    def __getitem__(self, i: int | slice) -> Hook | list[Hook]: return self.hooks[i]
    def __len__(self) -> int: return len(self.hooks)
    def __iter__(self) -> Iterator[Hook]: return iter(self.hooks)

    def remove(self) -> None:
        """Take every hook off its module."""
        for hook in self.hooks: hook.remove()

    def __enter__(self) -> "Hooks": return self
    def __exit__(self, *exc: Any) -> None: self.remove()

    def __repr__(self) -> str: return f"Hooks({self.hooks!r})"


# ---- the activation statistics the course records, and their readings ----
def activation_stats(output: Any, bins: int = 40, hist_range: tuple[float, float] = (0.0, 10.0)):
    """(mean, std, histogram of |activation| in `bins` bins over `hist_range`) of a module's output, on its device;
    None for an output that is not a floating-point tensor (a tuple's first item is used)."""
    out = output[0] if isinstance(output, (tuple, list)) and output else output
    if not isinstance(out, torch.Tensor) or not out.is_floating_point(): return None
    acts = out.detach().float()
    # mean and std separately: on the CPU torch.std_mean is several times slower than both together.
    return acts.mean(), acts.std(), torch.histc(acts.abs(), bins, *hist_range)


def append_stats(hook: Hook, module: nn.Module, inputs: tuple, output: Any, bins: int = 40,
                 hist_range: tuple[float, float] = (0.0, 10.0)) -> None:
    """A hook function: append the mean, std and histogram (`bins` bins of |activation| over `hist_range`) of
    `output` to `hook.stats`, a tuple of three lists (means, stds, histograms).

    The values stay on the module's device (no host-device sync per call); `HooksCallback` moves them to the
    CPU once per epoch. Outputs that are not floating-point tensors are skipped.
    """
    stats = activation_stats(output, bins, hist_range)
    if stats is None: return
    if hook.stats is None: hook.stats = ([], [], [])
    for records, value in zip(hook.stats, stats): records.append(value)


def _histograms(hook: Any) -> torch.Tensor:
    stats = getattr(hook, "stats", None)
    if stats is None or len(stats) < 3:
        raise ValueError("get_hist/get_min read hook.stats as (means, stds, histograms), as append_stats records them; "
                         "this hook has none yet: run the model with the hook on first.")
    hists = stats[2]
    if not isinstance(hists, torch.Tensor):
        if len(hists) == 0:
            raise ValueError("get_hist/get_min: the hook has recorded nothing yet: run the model with the hook on.")
        hists = torch.stack([h.cpu() for h in hists])
    return hists.cpu().float().t()  # (bins, records)


def get_hist(hook: Any) -> torch.Tensor:
    """The hook's histograms as a (bins, records) image: log(1 + count), time to the right (`show_image(get_hist(h),
    origin='lower')` draws it)."""
    return _histograms(hook).log1p()


def get_min(hook: Any) -> torch.Tensor:
    """Per record, the fraction of activations in the lowest histogram bin (near zero: "dead"), in [0, 1]."""
    h = _histograms(hook)
    return h[0] / h.sum(0).clamp(min=1)  # a record with no activation in range counts as 0, not 0/0


# ---- moving records to the CPU once per epoch ----
def records_to_cpu(records: Any) -> Any:
    """`records` (tensors in nested lists, tuples and dicts) with every tensor on the CPU.

    The device tensors of one list that share shape, dtype and device are stacked and copied in one transfer (one
    host-device sync per list, not one per record); tensors already on the CPU are left as they are.
    """
    if isinstance(records, torch.Tensor): return records.cpu()
    if isinstance(records, dict): return type(records)((k, records_to_cpu(v)) for k, v in records.items())
    if isinstance(records, tuple):
        return type(records)(*map(records_to_cpu, records)) if hasattr(records, "_fields") else \
            tuple(records_to_cpu(list(records)))
    if not isinstance(records, list): return records
    out = [r if isinstance(r, torch.Tensor) else records_to_cpu(r) for r in records]
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(out):
        if isinstance(r, torch.Tensor) and r.device.type != "cpu": groups.setdefault((r.shape, r.dtype, r.device), []).append(i)
    for idx in groups.values():
        for i, r in zip(idx, torch.stack([out[i] for i in idx]).cpu().unbind(0)): out[i] = r
    return out
