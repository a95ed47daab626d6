"""`Trainer.summarize_callbacks`: for each event, the callbacks that run there, in order, with their docstrings."""
from __future__ import annotations

import html
import inspect

from .callback import callback_name
from .events import BATCH_EVENTS
from .notebook import in_notebook
from .trainer import Trainer

COLUMNS = ("Step", "Callback", "Doc String")
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
    names = {id(cb): name for name, cb in trainer._named.items()}
    rows = []
    for event in events_in_run_order(trainer.events):
        for method in trainer._plan.get(event, ()):
            owner = getattr(method, "__self__", method)
            rows.append((event, names.get(id(owner), callback_name(owner)), _first_line(method)))
    return rows


def format_rows(rows: list[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> str:
    """A plain-text table; the event name is written only on the first of its rows."""
    shown = [r if i == 0 or r[0] != rows[i - 1][0] else ("", *r[1:]) for i, r in enumerate(rows)]
    widths = [max(len(str(c)) for c in col) for col in zip(columns, *shown)]

    def line(r): return "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, shown)])


def rows_html(rows: list[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='dataframe'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summarize_callbacks(self: Trainer, show: bool = True) -> list[tuple[str, str, str]]:
    """Show (HTML in a notebook, else text) and return the rows (Step, Callback, Doc String): who runs at each event."""
    rows = callback_rows(self)
    if show:
        if in_notebook():
            from IPython.display import HTML, display
            display(HTML(rows_html(rows)))
        else: print(format_rows(rows))
    return rows


Trainer.summarize_callbacks = summarize_callbacks
