"""`plot_losses` (what `MetricsCB.plot` draws): per-batch training loss, per-epoch validation loss and metrics."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..callbacks.metrics import MetricsCB


def _metrics_cb(source: Any) -> MetricsCB:
    from ..callbacks.metrics import MetricsCB
    if isinstance(source, MetricsCB): return source
    cb = getattr(source, "MetricsCB", None)
    if cb is None:
        raise ValueError(f"plot_losses needs a MetricsCB or a trainer that has one; {type(source).__name__} has none "
                         f"(add MetricsCB() or CoreCBs() to the trainer's callbacks).")
    return cb


def plot_losses(source: Any, figsize: tuple[float, float] = (8, 4.5)):
    """Training loss per batch and validation loss per epoch (left axis), metrics per epoch (right axis); the figure.

    `source` is a Trainer with a MetricsCB, or the MetricsCB. Epoch points are drawn at the end of their epoch's
    training batches (x counts training batches; with no training batches, x counts epochs).
    """
    import matplotlib.pyplot as plt
    cb = _metrics_cb(source)
    train = [r["loss"] for r in cb.losses_batch if r["training"]]
    n_epochs = len(cb.losses_epoch)
    if not train and not n_epochs:
        raise ValueError("plot_losses: nothing recorded yet; fit the trainer first.")
    per_epoch = len(train) / n_epochs if train and n_epochs else 1
    xs = [(i + 1) * per_epoch for i in range(n_epochs)]

    fig, ax = plt.subplots(figsize=figsize)
    if train: ax.plot(range(1, len(train) + 1), train, label="train loss (batch)", alpha=0.7)
    valid = [(x, e["valid"]) for x, e in zip(xs, cb.losses_epoch) if "valid" in e]
    if valid: ax.plot(*zip(*valid), "o-", label="valid loss (epoch)")
    ax.set_xlabel("training batch" if train else "epoch")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    names = list(dict.fromkeys(k for m in cb.metrics_epoch for k in m))
    if names:
        ax2 = ax.twinx()
        for i, name in enumerate(names):
            pts = [(x, m[name]) for x, m in zip(xs, cb.metrics_epoch) if name in m]
            ax2.plot(*zip(*pts), "s--", color=f"C{i + 2}", label=name)  # a twin axis restarts the colour cycle
        ax2.set_ylabel("metric")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="best")
    fig.tight_layout()
    return fig

