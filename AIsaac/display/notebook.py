"""Whether code runs in a Jupyter notebook, so output can be HTML there and plain text elsewhere."""
from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None: return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
