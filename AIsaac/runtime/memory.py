"""`clean_memory`, `clean_traceback`, `clean_ipython_hist`: free the (GPU) memory that a notebook keeps alive after an
error or in its output history."""
from __future__ import annotations

import gc
import sys
import traceback

import torch


def clean_traceback() -> None:
    """Drop the last uncaught exception that Python keeps (`sys.last_traceback` and friends).

    Its frames keep their local variables, tensors on the GPU included, alive until the next error; after an
    out-of-memory error in a notebook this is usually what holds the memory.
    """
    tb = getattr(sys, "last_traceback", None)
    if tb is not None: traceback.clear_frames(tb)
    for name in ("last_traceback", "last_type", "last_value", "last_exc"):
        if hasattr(sys, name): delattr(sys, name)


def clean_ipython_hist() -> None:
    """Forget IPython's input history and its `_i`, `_ii`, `_iN` variables, which keep old cells alive; a no-op
    outside IPython."""
    try: from IPython import get_ipython
    except ImportError: return
    shell = get_ipython()
    if shell is None: return
    user_ns = shell.user_ns
    shell.displayhook.flush()  # also drops the output history (_, __, ___, _N, Out)
    count = shell.displayhook.prompt_count + 1
    for n in range(1, count): user_ns.pop(f"_i{n}", None)
    user_ns.update(_i="", _ii="", _iii="")
    history = shell.history_manager
    history.input_hist_parsed[:] = [""] * count
    history.input_hist_raw[:] = [""] * count
    history._i = history._ii = history._iii = history._i00 = ""


def clean_memory() -> None:
    """`clean_traceback`, `clean_ipython_hist`, a garbage collection, and the accelerator's cached memory given back."""
    clean_traceback()
    clean_ipython_hist()
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized(): torch.cuda.empty_cache()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available(): torch.mps.empty_cache()
