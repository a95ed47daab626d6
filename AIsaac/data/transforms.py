"""`inplace`: turn a function that edits its argument into one that returns it (for `with_transform`)."""
from __future__ import annotations

import functools
from typing import Any, Callable


def inplace(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap `f`, which changes its argument in place, so that the call returns that argument."""
    @functools.wraps(f)
    def _f(b):
        f(b)
        return b
    return _f
