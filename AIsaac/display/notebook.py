"""Whether code runs in a Jupyter notebook, so output can be HTML there and plain text elsewhere."""
from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True in a shell run by a kernel for a front end that renders rich outputs (Jupyter, JupyterLab, VS Code,
    Colab, ...); False in a terminal IPython and outside IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None: return False
    shell = ipython.get_ipython()
    # By capability, not by class name: front ends run their own subclasses of ipykernel's ZMQInteractiveShell
    # (Colab's is google.colab._shell.Shell), and each has the kernel that sends its outputs to the front end as
    # display data. A terminal IPython has no kernel and prints text.
    return shell is not None and getattr(shell, "kernel", None) is not None
