"""`ActivationStatsCB`: per-module activation mean, std and histogram over training, and their plots."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..callback import Callback


def all_modules(module: nn.Module) -> bool:
    """The default module filter: every module."""
    return True


class ActivationStatsCB(Callback):
    '''Records mean, std and a histogram of |activation| of the chosen modules at every training batch

    `module_filter(module)` picks the modules (any truthy result; the default picks all of them). Records stay on
    the device during an epoch and are moved to the CPU once per epoch. To keep memory flat over long fits, when a
    module has more than `max_records` records every second one is dropped and recording continues at half the rate.
    '''

    def __init__(self, module_filter: Callable[[nn.Module], Any] = all_modules, bins: int = 40,
                 hist_range: tuple[float, float] = (0.0, 10.0), max_records: int = 4096):
        self.module_filter, self.bins, self.hist_range, self.max_records = module_filter, bins, hist_range, max_records
        self.names: list[str] = []
        self.stats: list[torch.Tensor] = []  # per module: (records, 2 + bins) = mean, std, histogram counts
        self._handles: list[Any] = []

    def state_dict(self) -> dict[str, Any]:
        """The records so far (those of the current epoch included) and the recording rate."""
        pending = [[torch.cat([m[None], s[None], h]).cpu() for m, s, h in p] for p in getattr(self, "_pending", [])]
        return {"names": list(self.names), "stats": list(self.stats), "pending": pending,
                "stride": getattr(self, "_stride", 1), "count": getattr(self, "_count", 0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["names"]) != self.names:
            raise ValueError(f"ActivationStatsCB: the checkpoint recorded modules {state['names']}, this fit records "
                             f"{self.names}; resume with the same module_filter.")
        self.stats, self._stride, self._count = list(state["stats"]), state["stride"], state["count"]
        self._pending = [[(r[0], r[1], r[2:]) for r in rows] for rows in state["pending"]]

    def before_fit(self, trainer):
        self.remove_hooks()
        named = [(f"{n} {type(m).__name__}" if n else type(m).__name__, m)
                 for n, m in trainer.model.named_modules() if self.module_filter(m)]
        self.names = [n for n, _ in named]
        self.stats = [torch.zeros(0, 2 + self.bins) for _ in named]
        self._pending = [[] for _ in named]
        self._stride, self._count, self._record = 1, 0, False
        self._handles = [m.register_forward_hook(self._hook(i)) for i, (_, m) in enumerate(named)]

    def _hook(self, i: int):
        def hook(module, inputs, output):
            if not self._record: return
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, torch.Tensor) or not out.is_floating_point(): return
            acts = out.detach().float()
            # Kept as separate tensors; the records are assembled once per epoch in _flush, not per batch.
            # (mean and std separately: on the CPU torch.std_mean is several times slower than both together.)
            self._pending[i].append((acts.mean(), acts.std(), torch.histc(acts.abs(), self.bins, *self.hist_range)))
        return hook

    def before_batch(self, trainer):
        self._record = trainer.training and self._count % self._stride == 0
        if trainer.training: self._count += 1

    def before_epoch(self, trainer): self._record = False

    def cleanup_epoch(self, trainer): self._flush()

    def cleanup_fit(self, trainer):
        self._flush()
        self.remove_hooks()

    def remove_hooks(self) -> None:
        for h in self._handles: h.remove()
        self._handles = []

    def _flush(self) -> None:
        self._record = False
        for i, pending in enumerate(getattr(self, "_pending", [])):
            if pending:
                means, stds, hists = (torch.stack(p) for p in zip(*pending))
                new = torch.cat([means[:, None], stds[:, None], hists], dim=1).cpu()
                self.stats[i] = torch.cat([self.stats[i], new])
            self._pending[i] = []
        if self.stats and max(len(s) for s in self.stats) > self.max_records:
            self.stats = [s[::2] for s in self.stats]
            self._stride *= 2

    # ---- reading and drawing ----
    def means(self) -> list[torch.Tensor]: return [s[:, 0] for s in self.stats]
    def stds(self) -> list[torch.Tensor]: return [s[:, 1] for s in self.stats]
    def hists(self) -> list[torch.Tensor]: return [s[:, 2:] for s in self.stats]

    def _grid(self, n: int, figsize: tuple[float, float] | None, **kw):
        import matplotlib.pyplot as plt
        cols = min(n, 4)
        rows = max(1, -(-n // cols))
        fig, axs = plt.subplots(rows, cols, figsize=figsize or (3 * cols, 2.5 * rows), squeeze=False, **kw)
        for ax in axs.flat[n:]: ax.set_visible(False)
        return fig, list(axs.flat[:n])

    def color_dim(self, figsize: tuple[float, float] | None = None):
        '''Histogram of each module's activations over training, as an image (time to the right, log scale).'''
        fig, axs = self._grid(len(self.stats), figsize)
        for ax, name, h in zip(axs, self.names, self.hists()):
            ax.imshow(h.T.log1p(), origin="lower", aspect="auto", cmap="viridis")
            ax.set_title(name, fontsize=8)
            ax.set_axis_off()
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
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=figsize)
        for name, m, s in zip(self.names, self.means(), self.stds()):
            ax0.plot(m.numpy(), label=name)
            ax1.plot(s.numpy(), label=name)
        ax0.set_title("means")
        ax1.set_title("stds")
        ax1.legend(fontsize=7)
        fig.tight_layout()
        return fig
