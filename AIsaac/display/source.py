"""`view_source_code`: the source of a class or function, highlighted in a notebook."""
from __future__ import annotations

import inspect
import textwrap
from typing import Any

from .notebook import in_notebook


def view_source_code(obj: Any) -> None:
    """Show the source of `obj` (a class, function or method): highlighted in a notebook, plain text elsewhere."""
    target = obj if inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj) else type(obj)
    try: src = textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError) as e:
        raise TypeError(f"view_source_code cannot find the source of {target!r} ({e}); it works on classes, "
                        f"functions and methods defined in Python files.") from e
    if in_notebook():
        from IPython.display import Code, display
        display(Code(src, language="python"))
    else: print(src)
