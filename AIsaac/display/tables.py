"""The one table renderer: rows of values as aligned plain text or as an HTML table (the epoch table, the
callback summary and the profile all go through it)."""
from __future__ import annotations

from html import escape
from typing import Any, Sequence


def cell(value: Any) -> str:
    """How a value is written in a table: floats with 6 decimals, anything else as `str`."""
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def column_widths(header: Sequence[Any], rows: Sequence[Sequence[Any]], minimum: int = 0) -> list[int]:
    """Each column's width: its widest cell (header included), at least `minimum`."""
    return [max(minimum, *(len(cell(r[i])) for r in (header, *rows) if i < len(r))) for i in range(len(header))]


def text_row(values: Sequence[Any], widths: Sequence[int], right: Sequence[bool] = ()) -> str:
    """One line: cells padded to `widths`, two spaces apart; columns flagged in `right` aligned right."""
    cells = [cell(v).rjust(w) if i < len(right) and right[i] else cell(v).ljust(w)
             for i, (v, w) in enumerate(zip(values, widths))]
    return "  ".join(cells).rstrip()


def text_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], rule: bool = True, right: Sequence[bool] = (),
               minimum: int = 0) -> str:
    """The header, a rule of dashes (when `rule`), then the rows, as aligned plain text."""
    widths = column_widths(header, rows, minimum)
    lines = [text_row(header, widths, right)]
    if rule: lines.append(text_row(["-" * w for w in widths], widths))
    return "\n".join(lines + [text_row(r, widths, right) for r in rows])


def html_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as HTML (cells escaped), styled like a pandas DataFrame in Jupyter."""
    head = "".join(f"<th>{escape(cell(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table class='dataframe'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
