"""`whole_number`: the one check for arguments that count something (epochs, batches, rows, files)."""
from __future__ import annotations

import numbers
from typing import Any, overload


@overload
def whole_number(name: str, value: Any, *, minimum: int = 1, owner: str | None = None, what: str | None = None,
                 none: None = None) -> int: ...
@overload
def whole_number(name: str, value: Any, *, minimum: int = 1, owner: str | None = None, what: str | None = None,
                 none: str) -> int | None: ...
def whole_number(name: str, value: Any, *, minimum: int = 1, owner: str | None = None, what: str | None = None,
                 none: str | None = None) -> int | None:
    """`value` as an int when it is a whole number >= `minimum`, else a ValueError naming `owner`, `name` and `what`.

    `what` says what the number counts (e.g. "batches per optimizer step"); `none`, when given, lets None through
    and says what None means (e.g. "all rows"). Booleans are refused: `True` is a flag, not a count.
    """
    if value is None and none is not None: return None
    # numbers.Integral takes numpy integers too; bool is an Integral but never a count.
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= minimum: return int(value)
    where = f"{owner}: " if owner else ""
    counts = f" ({what})" if what else ""
    alternative = f", or None ({none})" if none is not None else ""
    hint = ""
    if isinstance(value, float) and value.is_integer() and value >= minimum: hint = f" Pass {int(value)} (an int)."
    raise ValueError(f"{where}{name} must be a whole number >= {minimum}{counts}{alternative}; got {value!r}.{hint}")
