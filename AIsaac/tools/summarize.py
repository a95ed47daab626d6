"""`Trainer.summarize_callbacks` (for each event, the callbacks that run there, in order, with their docstrings) and
`Trainer.summarize_model` (a per-layer summary by torchinfo of the model on one batch of the train loader)."""
from __future__ import annotations

import inspect
import sys

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Sequence

from ..display.notebook import in_notebook
from ..display.tables import html_table, text_table
from ..events import BATCH_EVENTS
from ..runtime.batch import split_batch
from ..runtime.placement import model_device, to_device
from .sandbox import restoring

if TYPE_CHECKING:
    from ..trainer import Trainer

COLUMNS = ("Step", "Callback", "Doc String")
DEFAULT_COLUMNS = ("input_size", "output_size", "num_params", "mult_adds")
# The events in the order a fit reaches them (the declared list groups them by level instead).
RUN_ORDER = ("before_fit", "before_epoch", *BATCH_EVENTS, "after_epoch", "cleanup_epoch", "after_fit", "cleanup_fit")


def events_in_run_order(events: tuple[str, ...]) -> list[str]:
    """`events` sorted as a fit runs them; events unknown to that order keep their place at the end."""
    return [e for e in RUN_ORDER if e in events] + [e for e in events if e not in RUN_ORDER]


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def callback_rows(trainer: Trainer) -> list[tuple[str, str, str]]:
    """(event, callback name, method docstring's first line) for every planned method, events in run order."""
    names = {id(cb): name for name, cb in trainer.named_callbacks.items()}
    rows = []
    for event in events_in_run_order(trainer.events):
        for method in trainer.plan.get(event, ()):
            owner = getattr(method, "__self__", method)
            rows.append((event, names.get(id(owner), type(owner).__name__), _first_line(method)))
    return rows


def format_rows(rows: Sequence[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> str:
    """A plain-text table; the event name is written only on the first of its rows."""
    shown = [r if i == 0 or r[0] != rows[i - 1][0] else ("", *r[1:]) for i, r in enumerate(rows)]
    return text_table(columns, shown)


def rows_html(rows: Sequence[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> str:
    return html_table(columns, rows)


def _cell() -> int | None:
    """The number of the IPython cell running now (None outside IPython)."""
    ipython = sys.modules.get("IPython")
    return getattr(ipython.get_ipython(), "execution_count", None) if ipython is not None else None


class CallbackRows(list):
    """The rows of `summarize_callbacks`, a list of (Step, Callback, Doc String). As the value of an IPython cell
    they show as the table (HTML in a notebook, else text), except in the cell that has just shown it: the table
    appears once, not as a table and then a list."""

    shown_in: int | None = None

    def _ipython_display_(self) -> None:
        if self.shown_in is not None and self.shown_in == _cell(): return
        if in_notebook():
            from IPython.display import HTML, display
            display(HTML(rows_html(self)))
        else: print(format_rows(self))


def summarize_callbacks(trainer: Trainer, show: bool = True) -> list[tuple[str, str, str]]:
    """Show (HTML in a notebook, else text) and return the rows (Step, Callback, Doc String): who runs at each event.

    In a notebook the table shows once: the rows returned are not shown again as the cell's value."""
    rows = CallbackRows(callback_rows(trainer))
    if show:
        if in_notebook():
            from IPython.display import HTML, display
            display(HTML(rows_html(rows)))
        else: print(format_rows(rows))
        rows.shown_in = _cell()
    return rows

def summarize_model(trainer: Trainer, show: bool = True, **torchinfo_kwargs: Any):
    """Layers, shapes, parameter counts and mult-adds from `torchinfo.summary` on one training batch's inputs.

    The batch comes straight from `dls.train` (before callbacks), split into its `n_inp` inputs (a mapping batch
    whole, as keyword arguments) and moved to the model's device; the model's
    train/eval mode is kept. Extra keyword arguments go to `torchinfo.summary` (depth, col_names, ...).
    Returns torchinfo's `ModelStatistics` (printing it shows the table; `.total_params` etc. hold the numbers).
    """
    try:
        import torchinfo
    except ImportError as e:
        raise ImportError("summarize_model needs the torchinfo package: pip install torchinfo "
                          "(or pip install 'aisaac[inspect]').") from e
    # Put back afterwards: drawing a batch moves the loader's random stream, a train-mode pass the BatchNorm stats.
    with restoring(trainer):
        batch = next(iter(trainer.dls.train), None)
        if batch is None:
            raise ValueError("The training loader gave no batch; summarize_model needs one to run the model.")
        device = model_device(trainer.model)
        xb = to_device(split_batch(batch, trainer.n_inp)[0], device)  # the inputs, as BasicTrainCB gives them
        inputs = xb[0] if len(xb) == 1 and isinstance(xb[0], Mapping) else list(xb)  # a mapping: keyword arguments
        kwargs = {"col_names": DEFAULT_COLUMNS, "verbose": 0, "mode": "train" if trainer.model.training else "eval",
                  **torchinfo_kwargs}
        stats = torchinfo.summary(trainer.model, input_data=inputs, device=device, **kwargs)
    if show: print(stats)
    return stats
