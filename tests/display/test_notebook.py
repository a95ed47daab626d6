"""in_notebook: True only in a Jupyter kernel, so output is HTML there and plain text in a terminal or IPython."""
import sys
import types

import pytest

from AIsaac.display.notebook import in_notebook


def shell_module(shell):
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: shell
    return module


def test_plain_python_is_not_a_notebook(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert in_notebook() is False
    assert "IPython" not in sys.modules  # answered without importing IPython


@pytest.mark.parametrize("shell, expected", [(None, False), (type("TerminalInteractiveShell", (), {})(), False),
                                             (type("ZMQInteractiveShell", (), {})(), True)])
def test_only_a_jupyter_kernels_shell_is_a_notebook(monkeypatch, shell, expected):
    monkeypatch.setitem(sys.modules, "IPython", shell_module(shell))
    assert in_notebook() is expected
