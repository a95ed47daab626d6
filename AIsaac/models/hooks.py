"""`Hook` and `Hooks`: forward hooks that carry their own state, the course's way to look inside a model; `append_stats`,
`get_hist` and `get_min`: the activation statistics they usually record, and their readings.

A hook function is called as `func(hook, module, inputs, output)` after each forward pass of its module; it keeps
what it records on `hook` (by convention `hook.stats`). Remove hooks when done: `Hooks` is a context manager, and
`HooksCallback` (AIsaac.callbacks.hooks) removes its hooks at the end of every fit, however the fit ends.
"""
from __future__ import annotations

import functools
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
# From this many values on, a CPU float32 tensor's std and histogram take the two-pass and counting routes below:
# torch.std and torch.histc take about 0.6 and 3.3 ns a value there (a third of the seed tutorial's CoreCBs step).
_FAST_STATS_FROM = 16384


class StatsScratch:
    """Flat CPU buffers that `activation_stats` works in, kept from call to call (one per `ActivationStatsCB`).

    A large temporary freed at once lets glibc hand the memory back to the system, and the next batch faults it in
    again page by page: without these, recording the seed tutorial's conv net cost 350 page faults a batch."""

    def __init__(self) -> None:
        self.values, self.ints = torch.empty(0), torch.empty(0, dtype=torch.int32)

    def take(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A float32 and an int32 buffer of `n` values each (their contents are whatever was there)."""
        if self.values.numel() < n: self.values, self.ints = torch.empty(n), torch.empty(n, dtype=torch.int32)
        return self.values[:n], self.ints[:n]


def _fast(acts: torch.Tensor) -> bool:
    """Whether `acts` takes the CPU float32 routes of `abs_histogram` and `_std`."""
    return acts.device.type == "cpu" and acts.dtype == torch.float32 and acts.numel() >= _FAST_STATS_FROM


@functools.lru_cache(maxsize=64)
def _histc_constants(lo: float, hi: float) -> tuple[float, float, float, int, int] | None:
    """For `abs_histogram`: lo and hi as float32, histc's width (hi - lo in float32), hi's float32 bit pattern (for a
    float32 >= 0, larger values have larger patterns), and the step that sends a pattern above it past the last bin
    (to the pattern of hi + 2 * width); None where that is no float32."""
    lo32, hi32 = (torch.tensor(v, dtype=torch.float32) for v in (lo, hi))
    width = float(hi32 - lo32)
    if not float(hi32) + 2 * width < torch.finfo(torch.float32).max: return None
    bits = lambda v: int(torch.tensor(v, dtype=torch.float32).view(torch.int32))  # noqa: E731
    top = bits(float(hi32))
    return float(lo32), float(hi32), width, top, bits(float(hi32) + 2 * width) - (top + 1)


def abs_histogram(acts: torch.Tensor, bins: int, lo: float, hi: float,
                  scratch: StatsScratch | None = None) -> torch.Tensor:
    """`torch.histc(acts.abs(), bins, lo, hi)`, count for count: values outside [lo, hi] and NaNs left out, `hi`
    itself in the last bin, each value in the bin histc's own arithmetic gives it.

    On a large CPU float32 tensor with lo <= 0 the values are counted with `bincount` in under half of histc's time:
    |x| >= 0, so its float32 bit pattern orders like its value, and integer arithmetic sends everything above `hi`
    (inf and NaN too) past the last bin. Elsewhere it is histc. `scratch`: buffers to work in (else new ones)."""
    constants = _histc_constants(float(lo), float(hi)) if _fast(acts) and lo <= 0 < hi else None
    if constants is None: return torch.histc(acts.abs(), bins, lo, hi)
    lo32, hi32, width, top, jump = constants
    values, ints = (scratch or StatsScratch()).take(acts.numel())
    # In place in two buffers: |acts| (seen as int32 too), and `over`.
    bits = torch.abs(acts.reshape(-1), out=values).view(torch.int32).clamp_(max=top + 1)
    over = torch.sub(bits, top, out=ints).clamp_(min=0)  # 1 above hi, else 0
    v = bits.add_(over.mul_(jump)).view(torch.float32)
    if lo32 != 0: v.sub_(lo32)
    pos = over.copy_(v.mul_(float(bins)).div_(width))  # histc: (x - lo) * bins / (hi - lo), truncated
    counts = torch.bincount(pos, minlength=bins + 1)
    # Where histc's formula gives `bins` (x at hi, or just below it): the last bin.
    counts.narrow(0, bins - 1, 1).add_(counts.narrow(0, bins, 1))
    return counts[:bins].float()


def _std(acts: torch.Tensor, mean: torch.Tensor, scratch: StatsScratch | None = None) -> torch.Tensor:
    """`acts.std()` (n - 1 in the denominator), `mean` its mean; on a large CPU float32 tensor from the sum of the
    squared deviations (a third of torch.std's time there)."""
    if not _fast(acts): return acts.std()
    n = acts.numel()
    deviations = torch.sub(acts.reshape(-1), mean, out=(scratch or StatsScratch()).take(n)[0])
    # torch.sum adds float32 values in cascades (as exact as torch.std); vector_norm's running sum lost 2e-5 here.
    return (deviations.square_().sum() / (n - 1)).sqrt_()


def activation_stats(output: Any, bins: int = 40, hist_range: tuple[float, float] = (0.0, 10.0),
                     scratch: StatsScratch | None = None):
    """(mean, std, histogram of |activation| in `bins` bins over `hist_range`) of a module's output, on its device;
    None for an output that is not a floating-point tensor (a tuple's first item is used). `scratch`: buffers to
    work in, kept by the caller from call to call."""
    out = output[0] if isinstance(output, (tuple, list)) and output else output
    if not isinstance(out, torch.Tensor) or not out.is_floating_point(): return None
    acts = out.detach().float()
    # mean and std separately: on the CPU torch.std_mean is several times slower than both together.
    mean = acts.mean()
    return mean, _std(acts, mean, scratch), abs_histogram(acts, bins, *hist_range, scratch=scratch)


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
