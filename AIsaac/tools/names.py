"""`retrieve_global_name`: the names an object goes by where a function was called from."""
from __future__ import annotations

import inspect
from typing import Any

from ..runtime.args import whole_number


def retrieve_global_name(var: Any, frames_up: int = 2) -> list[str]:
    """The names bound to `var` (by identity) in the scope of the caller of the function that calls this one.

    For `def f(x): return retrieve_global_name(x)`, `f(trainer)` called in a notebook gives `['trainer']`.
    `frames_up`: how many calls up to look (1: the caller's own names).
    """
    frames_up = whole_number("frames_up", frames_up, owner="retrieve_global_name", what="calls to look up")
    frame = inspect.currentframe()
    try:
        for _ in range(frames_up):
            frame = frame.f_back if frame is not None else None
        if frame is None: raise ValueError(f"retrieve_global_name: there are fewer than {frames_up} calls above this one.")
        return [name for name, value in frame.f_locals.items() if value is var]
    finally:
        del frame  # a frame reference would keep every local of those calls alive
