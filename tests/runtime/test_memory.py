"""clean_traceback, clean_ipython_hist, clean_memory: what they free is really freed."""
import gc
import sys
import weakref

import torch

from AIsaac.all import clean_ipython_hist, clean_memory, clean_traceback


class Big:
    """A stand-in for a large tensor a failed cell held (weak-referenceable, so we can see it go)."""
    def __init__(self): self.t = torch.zeros(1000)


def fail_holding(obj):
    local = obj  # noqa: F841 (kept alive by the traceback's frame)
    raise RuntimeError("out of memory")


def record_last_exception(obj):
    try: fail_holding(obj)
    except RuntimeError:
        sys.last_type, sys.last_value, sys.last_traceback = sys.exc_info()


def test_clean_traceback_frees_what_the_last_error_held():
    obj = Big()
    ref = weakref.ref(obj)
    record_last_exception(obj)
    del obj
    gc.collect()
    assert ref() is not None  # the traceback's frame still holds it
    clean_traceback()
    gc.collect()
    assert ref() is None and not hasattr(sys, "last_traceback") and not hasattr(sys, "last_value")
    clean_traceback()  # nothing to clean: fine


def test_clean_memory_collects_cycles_and_outside_ipython_is_harmless():
    a, b = Big(), Big()
    a.other, b.other = b, a  # a reference cycle: only the collector frees it
    ref = weakref.ref(a)
    record_last_exception(a)
    del a, b
    clean_ipython_hist()  # not in IPython: a no-op
    clean_memory()
    assert ref() is None


def test_clean_ipython_hist_forgets_the_input_history(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config
    cfg = Config()
    cfg.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=cfg)
    try:
        shell.run_cell("x = 1", store_history=True)
        shell.run_cell("y = 2", store_history=True)
        assert shell.user_ns["_i1"] == "x = 1" and "y = 2" in shell.history_manager.input_hist_raw
        clean_ipython_hist()
        assert "_i1" not in shell.user_ns and "_i2" not in shell.user_ns and shell.user_ns["_i"] == ""
        assert set(shell.history_manager.input_hist_raw) == {""}
        assert shell.user_ns["x"] == 1  # variables stay
    finally:
        InteractiveShell.clear_instance()
