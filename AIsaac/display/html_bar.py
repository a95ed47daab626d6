"""`HTMLBar`: a progress bar drawn as HTML in a notebook output and redrawn in place (no widgets needed)."""
from __future__ import annotations

import html
import time
from typing import Any


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m:02d}:{s:02d}"


def show_html(html_text: str, plain_text: str, handle: Any = None) -> Any:
    """Show (or, given the `handle` of an earlier output, replace) a notebook output with HTML and a plain-text twin.

    The plain text is what a reader without HTML sees (a terminal, a diff); returns the output's handle.
    """
    from IPython.display import display
    bundle = {"text/html": html_text, "text/plain": plain_text}
    if handle is None: return display(bundle, raw=True, display_id=True)
    handle.update(bundle, raw=True)
    return handle


class HTMLBar:
    """The part of tqdm's interface ProgressCB uses (`update`, `set_postfix`, `close`), drawn as an HTML <progress>.

    Static copies of a notebook (GitHub, the docs site) show the bar as it was last drawn, unlike widget bars,
    whose state a static page cannot run. Redraws at most every `mininterval` seconds, plus the last one.
    `handle` reuses an earlier output, so consecutive bars (one per phase) take one place in the notebook.
    """

    def __init__(self, total: int | None = None, desc: str = "", leave: bool = True, disable: bool = False,
                 mininterval: float = 0.1, handle: Any = None, **_ignored: Any):
        self.total, self.desc, self.leave, self.disable, self.mininterval = total, desc, leave, disable, mininterval
        self.n, self.postfix, self.handle = 0, "", handle
        self._start = self._drawn = time.monotonic()
        if not disable: self._draw()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable: return
        now = time.monotonic()
        if now - self._drawn >= self.mininterval or self.n == self.total: self._draw(now)

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if refresh and not self.disable: self._draw()

    def close(self) -> None:
        if self.disable or self.handle is None: return
        if self.leave: self._draw()
        else: show_html("", "", self.handle)

    def text(self, now: float | None = None) -> str:
        """The bar's state in words: description, count, percent, elapsed time, postfix."""
        elapsed = _clock((now or time.monotonic()) - self._start)
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" {100 * self.n // self.total}%" if self.total else ""
        return f"{self.desc}: {count}{pct} [{elapsed}]" + (f" {self.postfix}" if self.postfix else "")

    def _draw(self, now: float | None = None) -> None:
        self._drawn = now = now or time.monotonic()
        words = self.text(now)
        value = f" value='{self.n}' max='{self.total}'" if self.total else ""  # no total: an indeterminate bar
        bar = f"<div><progress{value} style='width:300px;vertical-align:middle'></progress> {html.escape(words)}</div>"
        self.handle = show_html(bar, words, self.handle)
