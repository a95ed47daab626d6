"""`PPDict`: a dict that prints its numbers short (floats to 4 decimals, durations to whole seconds)."""
from __future__ import annotations

import math
from datetime import timedelta


class PPDict(dict):
    """A `dict` whose `str` shows floats rounded to 4 decimals and `timedelta`s as `H:MM:SS`, rounded up to the
    second; its values themselves are unchanged."""

    def __str__(self) -> str:
        def short(v):
            if isinstance(v, float): return round(v, 4)
            if isinstance(v, timedelta): return str(timedelta(seconds=math.ceil(v.total_seconds())))
            return v
        return str({k: short(v) for k, v in self.items()})
