"""`ActivationStatsCB`: per-module activation mean, std and histogram over training, and their plots (on `HooksCallback`)."""
from __future__ import annotations

import weakref
from functools import partial
from typing import Any, Callable

import torch
from torch import nn

from ..display.images import get_grid, show_image
from ..runtime.args import whole_number
from ..runtime.batch import loader_length
from ..runtime.placement import model_device
from ..models.hooks import StatsScratch, activation_stats
from .hooks_callback import HooksCallback, all_modules


class _Shared:
    """What the hooks of one ActivationStatsCB share: the buffers the statistics are worked out in, and the output
    recorded last (held weakly), its version counter and its record."""

    def __init__(self) -> None:
        self.scratch = StatsScratch()
        self.out: weakref.ref[Any] | None = None
        self.version = -1
        self.record: torch.Tensor | None = None

    def same_as_last(self, out: Any) -> bool:
        """Whether `out` is the tensor recorded last, unchanged since (a container such as `nn.Sequential(conv,
        nn.ReLU())` returns its last child's output)."""
        if self.out is None or not isinstance(out, torch.Tensor): return False
        same = self.out() is out
        return same and out._version == self.version


def _record(hook, module, inputs, output, bins: int, hist_range: tuple[float, float], shared: _Shared) -> None:
    """ActivationStatsCB's hook function: the output's (mean, std, histogram), on the device, written into the next
    row of `hook.rows` (kept in `hook.pending` past its end, or when the loader has no length). The record of an
    output recorded just before (by a child module) is copied, not worked out again."""
    out = output[0] if isinstance(output, (tuple, list)) and output else output
    previous = shared.record if shared.same_as_last(out) else None
    stats = None if previous is not None else activation_stats(out, bins, hist_range, shared.scratch)
    rows, n = hook.rows, hook.filled
    usable = rows is not None and n < len(rows) and isinstance(out, torch.Tensor) and rows.device == out.device
    into = rows[n] if usable else None
    if stats is not None: record = torch.cat([stats[0][None], stats[1][None], stats[2]], out=into)
    elif previous is not None: record = previous.clone() if into is None else into.copy_(previous)
    else: return  # not a floating-point tensor
    if into is None: hook.pending.append(record)
    else: hook.filled = n + 1
    shared.out, shared.version, shared.record = weakref.ref(out), out._version, record


def _epoch_rows(hook) -> torch.Tensor | None:
    """The rows `hook` recorded since the last flush, on the device, or None."""
    rows = getattr(hook, "rows", None)
    parts = ([rows[:hook.filled]] if rows is not None and hook.filled else []) + list(getattr(hook, "pending", ()))
    return torch.cat([p.reshape(-1, p.shape[-1]) for p in parts]) if parts else None


class ActivationStatsCB(HooksCallback):
    '''Records mean, std and a histogram of |activation| of the chosen modules at every training batch

    Built on `HooksCallback`: `module_filter(module)` picks the modules (any truthy result; the default picks all of
    them), each gets a hook, and `names` labels them. Records stay on the device during an epoch and are moved to the
    CPU once per epoch into `stats`: per module a (records, 2 + bins) tensor of mean, std and histogram counts (of
    |activation| in `bins` bins over `hist_range`). Each hook's `stats` holds the same records as
    (means, stds, histograms), so `get_hist(h)` and `get_min(h)` read it (`for h in cb`). To keep memory flat over
    long fits, when a module has more than `max_records` records every second one is dropped and recording
    continues at half the rate. An epoch's records are written into rows allocated once per fit (one per training
    batch), not kept as thousands of small tensors: between the activations' large buffers, those would fragment the
    CPU heap (the seed tutorial's CoreCBs fit held 0.8 GB more that way).
    '''

    def __init__(self, module_filter: Callable[[nn.Module], Any] = all_modules, bins: int = 40,
                 hist_range: tuple[float, float] = (0.0, 10.0), max_records: int = 4096):
        bins = whole_number("bins", bins, owner="ActivationStatsCB", what="histogram bins")
        max_records = whole_number("max_records", max_records, minimum=2, owner="ActivationStatsCB",
                                   what="records kept per module")
        # The epoch's records go to each hook's `pending` (on the device), moved to `stats` by flush.
        lo, hi = hist_range
        hist_range = (float(lo), float(hi))
        super().__init__(partial(_record, bins=bins, hist_range=hist_range, shared=_Shared()), module_filter)
        self.bins, self.hist_range, self.max_records = bins, hist_range, max_records
        self.stats: list[torch.Tensor] = []  # per module: (records, 2 + bins) = mean, std, histogram counts
        self._stride, self._count = 1, 0

    def state_dict(self) -> dict[str, Any]:
        """The records so far (those of the current epoch included) and the recording rate."""
        rows = [_epoch_rows(h) for h in self.hooks]
        pending = [[] if r is None else list(r.cpu().unbind(0)) for r in rows]
        return {"names": list(self.names), "stats": list(self.stats), "pending": pending,
                "stride": getattr(self, "_stride", 1), "count": getattr(self, "_count", 0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["names"]) != self.names:
            raise ValueError(f"ActivationStatsCB: the checkpoint recorded modules {state['names']}, this fit records "
                             f"{self.names}; resume with the same module_filter.")
        self.stats, self._stride, self._count = list(state["stats"]), state["stride"], state["count"]
        # The records of the epoch in progress at the checkpoint: this epoch's first records again.
        for hook, rows in zip(self.hooks, state["pending"]):
            if not len(rows): continue
            restored = torch.stack(list(rows))
            if hook.rows is not None and len(restored) <= len(hook.rows):
                hook.rows[:len(restored)] = restored.to(hook.rows.device)
                hook.filled = len(restored)
            else: hook.pending = [restored]

    def before_fit(self, trainer):
        super().before_fit(trainer)
        self.stats = [torch.zeros(0, 2 + self.bins) for _ in self.hooks]
        n, device = loader_length(getattr(trainer.dls, "train", None)), model_device(trainer.model)
        # One allocation for the fit: every hook's rows for one epoch (the stride only ever leaves rows unused).
        buffer = torch.zeros(len(self.hooks), n, 2 + self.bins, device=device) if n and self.hooks else None
        for i, hook in enumerate(self.hooks):
            hook.rows, hook.filled, hook.pending = (buffer[i] if buffer is not None else None), 0, []
        self._stride, self._count = 1, 0
        self._share()

    def before_batch(self, trainer):
        super().before_batch(trainer)  # active in training batches only
        if trainer.training:
            self.active = self._count % self._stride == 0
            self._count += 1

    def flush(self) -> None:
        """Move the epoch's records from the device to `stats` (one copy per module), halving past `max_records`."""
        for i, hook in enumerate(self.hooks):
            new = _epoch_rows(hook)
            if new is not None: self.stats[i] = torch.cat([self.stats[i], new.cpu()])
            hook.filled, hook.pending = 0, []
        if self.stats and max(len(s) for s in self.stats) > self.max_records:
            self.stats = [s[::2] for s in self.stats]
            self._stride *= 2
        self._share()

    def _share(self) -> None:
        # Each hook's `stats` shows its module's records as (means, stds, histograms), the original's form.
        for hook, s in zip(self.hooks, self.stats): hook.stats = (s[:, 0], s[:, 1], s[:, 2:])

    # ---- reading and drawing ----
    def means(self) -> list[torch.Tensor]: return [s[:, 0] for s in self.stats]
    def stds(self) -> list[torch.Tensor]: return [s[:, 1] for s in self.stats]
    def hists(self) -> list[torch.Tensor]: return [s[:, 2:] for s in self.stats]

    def _grid(self, n: int, figsize: tuple[float, float] | None):
        if n == 0: raise ValueError("ActivationStatsCB has no records to draw: run a fit with it first.")
        cols = min(n, 4)
        rows = -(-n // cols)
        fig, axs = get_grid(n, rows, cols, figsize=figsize or (3 * cols, 2.5 * rows), squeeze=False)
        return fig, list(axs.flat[:n])

    def color_dim(self, figsize: tuple[float, float] | None = None):
        '''Histogram of each module's activations over training, as an image (time to the right, log scale).'''
        fig, axs = self._grid(len(self.stats), figsize)
        for ax, name, h in zip(axs, self.names, self.hists()):
            show_image(h.T.log1p(), ax=ax, origin="lower", aspect="auto", cmap="viridis")
            ax.set_title(name, fontsize=8)
        fig.tight_layout()
        return fig

    def dead_chart(self, figsize: tuple[float, float] | None = None):
        '''Fraction of each module's activations in the lowest histogram bin (near zero) over training.'''
        fig, axs = self._grid(len(self.stats), figsize)
        for ax, name, h in zip(axs, self.names, self.hists()):
            ax.plot((h[:, 0] / h.sum(1).clamp(min=1)).numpy())
            ax.set_ylim(0, 1)
            ax.set_title(name, fontsize=8)
        fig.tight_layout()
        return fig

    def plot_stats(self, figsize: tuple[float, float] = (10, 4)):
        '''Mean and std of each module's activations over training.'''
        import matplotlib.pyplot as plt
        from ..display.figure import ShownOnceFigure
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=figsize, FigureClass=ShownOnceFigure)  # shown once
        for name, m, s in zip(self.names, self.means(), self.stds()):
            ax0.plot(m.numpy(), label=name)
            ax1.plot(s.numpy(), label=name)
        ax0.set_title("means")
        ax1.set_title("stds")
        ax1.legend(fontsize=7)
        fig.tight_layout()
        return fig
