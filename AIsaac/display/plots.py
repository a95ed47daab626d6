"""`plot_losses` (what `MetricsCB.plot` draws): per-batch training loss, per-epoch validation loss and metrics."""
from __future__ import annotations

from typing import Any, Sequence


def _records(source: Any) -> tuple[Sequence[dict], Sequence[dict], Sequence[dict]]:
    # A trainer shows its MetricsCB's records; any object with the three record lists (a MetricsCB) shows its own.
    holder = source.named_callbacks.get("MetricsCB") if hasattr(source, "named_callbacks") else source
    if holder is None or not hasattr(holder, "losses_epoch"):
        raise ValueError(f"plot_losses needs records: a trainer with a MetricsCB, a MetricsCB, or the lists "
                         f"(batch_losses, losses_epoch, metrics_epoch); {type(source).__name__} has none (add "
                         f"MetricsCB() or CoreCBs() to the trainer's callbacks).")
    return holder.losses_batch, holder.losses_epoch, holder.metrics_epoch


def plot_losses(source: Any, losses_epoch: Sequence[dict] | None = None, metrics_epoch: Sequence[dict] | None = None,
                figsize: tuple[float, float] = (8, 4.5)):
    """Training loss per batch and validation loss per record (left axis), metrics per record (right axis); the figure.

    The records: `source` is the per-batch losses (`trainer.batch_losses`, `{'training', 'loss'}` each) with
    `losses_epoch` and `metrics_epoch` (one dict per epoch, MetricsCB's lists); or, alone, a trainer with a MetricsCB
    or the MetricsCB, whose records are read. Epoch points are drawn at the end of their epoch's training batches
    (x counts training batches; with no training batches, x counts epochs).
    """
    import matplotlib.pyplot as plt
    if isinstance(losses_epoch, tuple) and len(losses_epoch) == 2 and all(isinstance(v, (int, float)) for v in losses_epoch):
        figsize, losses_epoch = tuple(losses_epoch), None  # type: ignore[assignment]  # the earlier plot_losses(trainer, figsize)
    if losses_epoch is None: batch_losses, losses_epoch, metrics_epoch = _records(source)
    else: batch_losses, metrics_epoch = source, metrics_epoch or [{} for _ in losses_epoch]
    train = [r["loss"] for r in batch_losses if r["training"]]
    n_epochs = len(losses_epoch)
    if not train and not n_epochs:
        raise ValueError("plot_losses: nothing recorded yet; fit the trainer first.")
    per_epoch = len(train) / n_epochs if train and n_epochs else 1
    xs = [(i + 1) * per_epoch for i in range(n_epochs)]

    from .figure import ShownOnceFigure
    fig, ax = plt.subplots(figsize=figsize, FigureClass=ShownOnceFigure)  # a notebook shows it once
    if train: ax.plot(range(1, len(train) + 1), train, label="train loss (batch)", alpha=0.7)
    valid = [(x, e["valid"]) for x, e in zip(xs, losses_epoch) if "valid" in e]
    if valid: ax.plot(*zip(*valid), "o-", label="valid loss (epoch)")
    ax.set_xlabel("training batch" if train else "epoch")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    names = list(dict.fromkeys(k for m in metrics_epoch for k in m))
    if names:
        ax2 = ax.twinx()
        for i, name in enumerate(names):
            pts = [(x, m[name]) for x, m in zip(xs, metrics_epoch) if name in m]
            ax2.plot(*zip(*pts), "s--", color=f"C{i + 2}", label=name)  # a twin axis restarts the colour cycle
        ax2.set_ylabel("metric")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="best")
    fig.tight_layout()
    return fig

